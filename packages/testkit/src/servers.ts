// The real-component starters without any test-runner imports, for scripts such as the local stack.

export {
  type AssertedRequest,
  ensureIdentityKeyFiles,
  gatewayHeaders,
  type IdentityKeyFiles,
  type IdentityKeys,
  identityKeyPair,
} from './identity-keys.ts';
export { ownedTempDir, ownProcess, removeOwnedDir } from './owned.ts';
export { redisConf, repoRoot } from './paths.ts';
export { freePort } from './ports.ts';
export { createDatabase, type PostgresServer, startEmbeddedPostgres, type TestDatabase } from './postgres.ts';
export { RedisServer, type RedisServerOptions, type Role } from './redis-server.ts';
export { type Exit, type LogLine, ServiceProcess, type SpawnOptions } from './service-process.ts';
export { type ReceivedMail, type SmtpServerOptions, SmtpTestServer } from './smtp.ts';
export {
  LOCAL_DEFAULTS,
  SERVICES,
  type ServiceName,
  STACK_WIRED,
  type Stack,
  type StackOptions,
  startStack,
} from './stack.ts';
