// The real-component starters without any test-runner imports, for scripts such as the local stack.

export { clusterNodeArgs, RedisCluster, type RedisClusterOptions } from './cluster.ts';
export {
  type AssertedRequest,
  ensureIdentityKeyFiles,
  gatewayHeaders,
  gatewayHeadersBatch,
  type IdentityKeyFiles,
  type IdentityKeys,
  identityKeyPair,
} from './identity-keys.ts';
export { ownedTempDir, ownProcess, removeOwnedDir } from './owned.ts';
export { privateDirMode, redisConf, repoRoot } from './paths.ts';
export {
  ensureServiceRoles,
  roleNames,
  SCHEMA_SERVICES,
  type SchemaService,
  type ServiceDatabase,
  scramVerifier,
  serviceRoleNames,
  serviceRolesSql,
} from './pg-roles.ts';
export { freePort } from './ports.ts';
export { createDatabase, type PostgresServer, startEmbeddedPostgres, type TestDatabase } from './postgres.ts';
export { rawRedis } from './raw-redis.ts';
export { ONE_SHOT, oneShot } from './redis-admin.ts';
export {
  type RedisPasswords,
  RedisServer,
  type RedisServerOptions,
  type Role,
  randomPassword,
} from './redis-server.ts';
export { SentinelGroup, type SentinelGroupOptions, type SentinelRole } from './sentinel.ts';
export {
  type Exit,
  type LogLine,
  SERVICE_ENV,
  SERVICE_NODE_OPTIONS,
  ServiceProcess,
  type SpawnOptions,
} from './service-process.ts';
export { type ReceivedMail, type SmtpServerOptions, SmtpTestServer } from './smtp.ts';
export { type ReadyProcess, spawnUntilReady } from './spawn-ready.ts';
export {
  type Backend,
  type Credentials,
  LOCAL_DEFAULTS,
  SERVICES,
  type ServiceName,
  STACK_WIRED,
  type Stack,
  type StackOptions,
  startStack,
} from './stack.ts';
