/**
 * The local stack: `npm start`. Brings the whole of atoll up on this machine (see
 * packages/testkit/src/stack.ts), prints a line per component as it becomes ready and the gateway URL,
 * and stops everything cleanly on Ctrl-C, or when a service or one of its Redis servers dies. Data
 * (Redis files, the embedded PostgreSQL cluster, logs, the identity key pair) stays in .atoll/data (mode
 * 0700; 0711 as root, for the embedded PostgreSQL's own user), so the next start continues where this
 * one stopped. Each service connects to Redis as its own
 * ACL user and to PostgreSQL as its own role; their random passwords, and the Redis admin's, and the
 * token content sends to auth's internal route (INTERNAL_TOKEN, AUTH_INTERNAL_TOKEN) are made on the
 * first start and kept in .atoll/data/credentials.json (mode 0600).
 *
 * Environment (each variable with its default and description: the root .env.example):
 * - the stack's own: PORT and HOST (the gateway's, default 3000 and 127.0.0.1), DATABASE_URL (this
 *   PostgreSQL instead of the embedded one), SMTP_URL (this mail server instead of the local sink, which
 *   logs every email to .atoll/data/logs/mail.log), IDENTITY_KEY_DIR (the gateway's identity key pair:
 *   made once, private key 0600 in a 0700 folder; default .atoll/data/identity), ATOLL_DATA_DIR,
 *   ATOLL_INSTANCES, ATOLL_REDIS_TOPOLOGY (a role as a Sentinel group or a Redis Cluster);
 * - every other variable a service's config schema (`EnvSchema`) reads goes to the services that read
 *   it, e.g. CORS_ORIGINS, TRUSTED_PROXIES and RATE_LIMIT_* to the gateway, LOGIN_* to auth, LOG_LEVEL
 *   and METRICS_TOKEN to all four. scripts/stack-env.ts derives the list from the schemas;
 * - except the wiring, which the stack sets itself whatever the environment says (STACK_WIRED in
 *   packages/testkit/src/stack.ts): each service's PORT and HOST, the URLs of the stack's own Redis
 *   servers, AUTH_URL, CONTENT_URL and NOTIFIER_URL, GOOGLE_* (the local OpenID provider), the
 *   internal token, and DATABASE_URL, SMTP_URL and the identity keys only as above.
 * Unset or empty, a variable keeps the stack's default (a plain-HTTP session cookie; PUBLIC_URL, the
 * gateway's URL), else the service's own.
 */
import { chmodSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  type Exit,
  ensureIdentityKeyFiles,
  privateDirMode,
  type Stack,
  startStack,
} from '@atoll/testkit/servers';
import {
  COMMAND_VARIABLES,
  type CommandVariable,
  commandSetting,
  parseInstances,
  parseRedisTopology,
  serviceSettings,
} from './stack-env.ts';

const setting = (name: CommandVariable) => commandSetting(process.env, name);
const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(setting('ATOLL_DATA_DIR') ?? join(root, '.atoll', 'data'));
// Only this user may read the data: the keys, the passwords, the databases and the logs.
mkdirSync(dataDir, { recursive: true, mode: privateDirMode() });
chmodSync(dataDir, privateDirMode());

// The gateway's identity key pair, made once and kept with the data (or where IDENTITY_KEY_DIR says) in a
// folder of its own (0700: the data folder itself must stay reachable by the `postgres` user when run as
// root): the gateway reads the private key file (0600), the other services only the public one.
const identity = ensureIdentityKeyFiles(resolve(setting('IDENTITY_KEY_DIR') ?? join(dataDir, 'identity')));

const log = (line: string) => console.log(`atoll: ${line}`);
let stack: Stack | undefined;
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  await stack?.stop();
  log('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  log(`data in ${dataDir}`);
  const databaseUrl = setting('DATABASE_URL');
  const smtpUrl = setting('SMTP_URL');
  stack = await startStack({
    dataDir,
    ...(databaseUrl ? { databaseUrl } : {}),
    ...(smtpUrl ? { smtpUrl } : {}),
    gatewayPort: Number(setting('PORT') ?? COMMAND_VARIABLES.PORT.value),
    gatewayHost: setting('HOST') ?? COMMAND_VARIABLES.HOST.value,
    identity,
    // Each service's Redis and PostgreSQL password, made on the first start (mode 0600).
    credentialsFile: join(dataDir, 'credentials.json'),
    serviceEnv: serviceSettings(process.env),
    instances: parseInstances(setting('ATOLL_INSTANCES')),
    ...parseRedisTopology(setting('ATOLL_REDIS_TOPOLOGY')),
    onReady: log,
  });
  log(`atoll is up: ${stack.gatewayUrl} (Ctrl-C stops everything)`);
  // A service or a Redis server that dies takes the stack down with it, loudly: nothing half-running.
  // (A Sentinel group's or a cluster's node may die: that is what the group is for.)
  const lastLines = (text: string) => text.trim().split('\n').slice(-5).join(' | ');
  const watch = (name: string, exited: Promise<Exit>, output: () => string) =>
    exited.then(({ code, signal }) => {
      if (stopping) return;
      log(`${name} exited (${signal ?? code}): ${lastLines(output())}`);
      void shutdown(1);
    });
  for (const proc of [...Object.values(stack.instances).flat(), stack.services.gateway])
    watch(proc.name, proc.exited, () => proc.stderr);
  for (const [role, server] of Object.entries(stack.redis))
    if (!(role in stack.sentinels) && !(role in stack.clusters))
      watch(`redis-${role}`, server.exited, () => server.log);
} catch (err) {
  log(`could not start: ${(err as Error).message}`);
  await shutdown(1);
}
