/**
 * The whole of atoll on this machine, natively: three redis-server processes with the deploy/redis role
 * files, PostgreSQL (the given DATABASE_URL, or an embedded one), every service's migrations, then auth,
 * content and notifier, then the gateway in front of them; a local SMTP sink receives the mail. Used by the local stack command
 * (`npm start`, scripts/stack.ts) and by the end-to-end tests, so what a developer runs is what is tested.
 */
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Events, OAuth2Server } from 'oauth2-mock-server';
import pg from 'pg';
import { RedisCluster } from './cluster.ts';
import type { IdentityKeyFiles, IdentityKeys } from './identity-keys.ts';
import { privateDirMode } from './paths.ts';
import {
  ensureServiceRoles,
  SCHEMA_SERVICES,
  type SchemaService,
  type ServiceDatabase,
  serviceRoleNames,
} from './pg-roles.ts';
import { freePort } from './ports.ts';
import { startEmbeddedPostgres } from './postgres.ts';
import { type RedisPasswords, RedisServer, type Role, randomPassword } from './redis-server.ts';
import { SentinelGroup, type SentinelRole } from './sentinel.ts';
import { ServiceProcess } from './service-process.ts';
import { SmtpTestServer } from './smtp.ts';

export interface StackOptions {
  /** Redis data, the embedded PostgreSQL cluster and the service logs live here. */
  dataDir: string;
  /** A PostgreSQL database to use (each service keeps to its own schema); else an embedded server. */
  databaseUrl?: string;
  gatewayPort?: number;
  gatewayHost?: string;
  /**
   * The identity keys: the gateway gets the private key, the other services the public one, each as a
   * file path (`npm start`) or inline text (tests).
   */
  identity: IdentityKeyFiles | Pick<IdentityKeys, 'privateKeyText' | 'publicKeyText'>;
  keyPrefix?: string;
  /** Extra environment for every service, e.g. LOG_LEVEL. */
  env?: Record<string, string>;
  /** Extra environment for one service, on top of `env` (`npm start` passes each the variables it reads). */
  serviceEnv?: Partial<Record<ServiceName, Record<string, string>>>;
  /** One line per component as it becomes ready. */
  onReady?: (line: string) => void;
  /** Keep every log line in memory (tests); otherwise logs only go to files in `<dataDir>/logs`. */
  retainLogs?: boolean;
  /** Run the services (and their migrations) from their sources (default) or from `dist` (`pnpm build` first). */
  build?: 'source' | 'dist';
  /** Send mail through this SMTP server; otherwise a local sink receives it (logged to `logs/mail.log`). */
  smtpUrl?: string;
  /**
   * Keep the Redis and PostgreSQL passwords and the internal token in this JSON file (mode 0600) and
   * reuse them on the next start (`npm start`); otherwise every start makes new ones.
   */
  credentialsFile?: string;
  /**
   * How many instances of auth, content and notifier to run (default one each), each on its own port;
   * the gateway gets all their URLs (AUTH_URL etc. as lists), content asks the first auth instance.
   */
  instances?: Partial<Record<Backend, number>>;
  /**
   * Roles to run as a Sentinel group (a primary, a replica, three sentinels: sentinel.ts) instead of one
   * server; the services get `redis+sentinel://` URLs for them.
   */
  sentinel?: SentinelRole[];
  /**
   * Roles to run as a Redis Cluster (three primaries, three replicas: cluster.ts) instead of one server;
   * the services get `redis+cluster://` URLs for them. A role is a Sentinel group or a cluster, not both.
   */
  cluster?: Role[];
}

/** The services behind the gateway. */
export type Backend = 'auth' | 'content' | 'notifier';

/**
 * Every password the stack made: Redis's per role and user, PostgreSQL's per role name, and the token
 * content sends to auth's internal route.
 */
export interface Credentials {
  redis: Partial<Record<Role, RedisPasswords>>;
  postgres: Record<string, string>;
  internal?: string;
}

export const SERVICES = ['auth', 'content', 'notifier', 'gateway'] as const;
export type ServiceName = (typeof SERVICES)[number];

/**
 * The variables the stack always sets itself, whatever `env` or `serviceEnv` say: each service's address
 * (PORT, HOST: the stack picks the ports; the gateway's come from `gatewayPort` and `gatewayHost`), the
 * addresses of the stack's own Redis servers, PostgreSQL (`databaseUrl`), SMTP (`smtpUrl`) and OpenID
 * provider (Google sign-in goes to the local one), the services' URLs of each other, the identity keys
 * (`identity`: the private key to the gateway only, the public key to the others) and the internal token
 * (a random one per stack, to auth and content only). Everything else is a
 * setting, where `env` and `serviceEnv` win over the stack's defaults (LOCAL_DEFAULTS, REDIS_KEY_PREFIX
 * from `keyPrefix`, PUBLIC_URL from the gateway's address).
 */
export const STACK_WIRED = [
  'HOST',
  'PORT',
  'IDENTITY_PRIVATE_KEY',
  'IDENTITY_PRIVATE_KEY_FILE',
  'IDENTITY_PUBLIC_KEYS',
  'IDENTITY_PUBLIC_KEYS_FILE',
  'DATABASE_URL',
  'REDIS_CACHE_URL',
  'REDIS_SESSION_URL',
  'REDIS_QUEUE_URL',
  'REDIS_AUDIT_CACHE_URL',
  'REDIS_AUDIT_SESSION_URL',
  'REDIS_AUDIT_QUEUE_URL',
  'AUTH_URL',
  'CONTENT_URL',
  'NOTIFIER_URL',
  'SMTP_URL',
  'GOOGLE_ISSUER',
  'GOOGLE_CLIENT_ID',
  'GOOGLE_CLIENT_SECRET',
  'GOOGLE_REDIRECT_URL',
  'INTERNAL_TOKEN',
  'AUTH_INTERNAL_TOKEN',
] as const;
/** A service's wiring: only STACK_WIRED names (the compiler refuses any other). */
type Wiring = Partial<Record<(typeof STACK_WIRED)[number], string>>;

/**
 * Settings the stack gives every service unless told otherwise: plain HTTP on loopback, for local use
 * only. A deployment keeps the schemas' defaults (a Secure `__Host-` cookie, common passwords refused);
 * the root .env.example shows those and notes these beside them.
 */
export const LOCAL_DEFAULTS: Record<string, string> = {
  // A cookie without the Secure flag, so without the __Host- prefix either.
  SESSION_COOKIE_NAME: 'atoll_session',
  DEVICE_COOKIE_NAME: 'atoll_device',
  SESSION_COOKIE_SECURE: 'false',
  // The public RealWorld conformance suites sign up with `password` and `password123`.
  PASSWORD_DENY_COMMON: 'false',
};
const MIGRATED = ['auth', 'content', 'notifier'] as const;
const ROLES = ['cache', 'session', 'queue'] as const;

export interface Stack {
  gatewayUrl: string;
  /** The local OpenID provider standing in for Google (tests can hook its responses). */
  oidc: OAuth2Server;
  /** The local mail sink (null when `smtpUrl` was given): every email the notifier sent, parsed. */
  smtp: SmtpTestServer | null;
  /** The admin URL of the database (a superuser's, or whoever `databaseUrl` named): never a service's. */
  databaseUrl: string;
  /** Each service's own PostgreSQL role and its schema owner's (migrations). */
  databases: Record<SchemaService, ServiceDatabase>;
  /**
   * Each role's server; for a role run as a Sentinel group, the node that was its primary at start
   * (`sentinels[role]` knows the current one); for a cluster, its first node (`clusters[role]` has all).
   */
  redis: Record<Role, RedisServer>;
  /** The roles run as Sentinel groups (`sentinel` option). */
  sentinels: Partial<Record<SentinelRole, SentinelGroup>>;
  /** The roles run as Redis Clusters (`cluster` option). */
  clusters: Partial<Record<Role, RedisCluster>>;
  /** Each service's first (or only) instance. */
  services: Record<ServiceName, ServiceProcess>;
  /** Every instance of each service behind the gateway, in the order of the gateway's lists. */
  instances: Record<Backend, ServiceProcess[]>;
  /** The environment a service was started with (to restart one the same way). */
  envOf(name: ServiceName): Record<string, string>;
  /**
   * Replaces one instance the way a redeploy does: stops it with `signal` (SIGTERM: a graceful drain),
   * starts a new process with the same environment on the same port (the gateway's list does not
   * change) and waits until it is ready. Returns how the old one exited.
   */
  replaceInstance(
    name: Backend,
    index: number,
    opts?: { signal?: NodeJS.Signals },
  ): Promise<{ exit: Awaited<ServiceProcess['exited']>; process: ServiceProcess }>;
  /** Stops everything in reverse order: gateway, services, Redis (which saves), PostgreSQL. */
  stop(): Promise<void>;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const say = opts.onReady ?? (() => {});
  const logsDir = join(opts.dataDir, 'logs');
  // Only this user may read the data, the logs and the password files.
  mkdirSync(opts.dataDir, { recursive: true, mode: privateDirMode() });
  mkdirSync(logsDir, { recursive: true, mode: 0o700 });
  chmodSync(logsDir, 0o700); // a folder from before keeps its mode otherwise
  const credentials = readCredentials(opts.credentialsFile);
  // The Redis users are made for one key prefix, so every service must use it (`npm start` passes
  // REDIS_KEY_PREFIX to every service alike).
  const keyPrefix =
    opts.keyPrefix ??
    opts.env?.REDIS_KEY_PREFIX ??
    Object.values(opts.serviceEnv ?? {}).find((env) => env?.REDIS_KEY_PREFIX)?.REDIS_KEY_PREFIX ??
    'atoll';
  const cleanups: Array<() => Promise<void>> = [];
  const stop = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    cleanups.length = 0;
  };

  const both = opts.cluster?.find((role) => (opts.sentinel as Role[] | undefined)?.includes(role));
  if (both) throw new Error(`redis-${both} cannot be both a Sentinel group and a cluster`);

  try {
    // Redis, one process per role, a Sentinel group or a cluster.
    const redis = {} as Record<Role, RedisServer>;
    const sentinels: Stack['sentinels'] = {};
    const clusters: Stack['clusters'] = {};
    await Promise.all(
      ROLES.map(async (role) => {
        const dir = join(opts.dataDir, `redis-${role}`);
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        chmodSync(dir, 0o700);
        if (opts.cluster?.includes(role)) {
          const cluster = await RedisCluster.start({
            role,
            dir,
            keyPrefix,
            ...(credentials.redis[role] ? { passwords: credentials.redis[role] } : {}),
          });
          clusters[role] = cluster;
          redis[role] = cluster.nodes[0] as RedisServer;
          credentials.redis[role] = cluster.passwords;
          cleanups.push(() => cluster.stop());
          say(
            `redis-${role} ready: a cluster of 3 primaries and 3 replicas at ${cluster.address} (deploy/redis/${role}.conf)`,
          );
          return;
        }
        if (role !== 'cache' && opts.sentinel?.includes(role)) {
          const group = await SentinelGroup.start({
            role,
            dir,
            keyPrefix,
            ...(credentials.redis[role] ? { passwords: credentials.redis[role] } : {}),
          });
          sentinels[role] = group;
          redis[role] = group.nodes[0] as RedisServer;
          credentials.redis[role] = group.passwords;
          cleanups.push(() => group.stop());
          say(`redis-${role} ready: a Sentinel group at ${group.address} (deploy/redis/${role}.conf)`);
          return;
        }
        redis[role] = await RedisServer.start(role, {
          dir,
          keyPrefix,
          ...(credentials.redis[role] ? { passwords: credentials.redis[role] } : {}),
        });
        credentials.redis[role] = redis[role].passwords;
        cleanups.push(() => redis[role].stop());
        // The address only: the admin's password stays in the credentials file.
        say(`redis-${role} ready at ${redis[role].address} (deploy/redis/${role}.conf)`);
      }),
    );
    // Where the Redis servers listen (their ports change with every start), for tools run beside the
    // stack (`pnpm redis:audit`); the passwords stay in the credentials file. Gone once the stack stops.
    const addressesFile = join(opts.dataDir, 'stack.json');
    const addresses = { keyPrefix, redis: Object.fromEntries(ROLES.map((r) => [r, redis[r].address])) };
    writeFileSync(addressesFile, `${JSON.stringify(addresses, null, 2)}\n`, { mode: 0o600 });
    cleanups.push(async () => rmSync(addressesFile, { force: true }));

    // PostgreSQL.
    let databaseUrl = opts.databaseUrl;
    if (databaseUrl) {
      say(`postgres: using DATABASE_URL (${new URL(databaseUrl).host})`);
    } else {
      const dir = join(opts.dataDir, 'postgres');
      // As root, initdb opens it to the `postgres` user (the cluster inside stays 0700, theirs).
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const server = await startEmbeddedPostgres({ dir, persistent: true });
      cleanups.push(() => server.stop());
      databaseUrl = await ensureDatabase(server.adminUrl, 'atoll');
      say(`postgres ready at ${new URL(databaseUrl).host} (embedded, data in ${dir})`);
    }

    // Each service's roles: the schema owner runs its migrations, the service runs with data rights only.
    const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
    for (const name of serviceRoleNames(database)) credentials.postgres[name] ??= randomPassword();
    // What content proves itself with to auth's internal route (GET /internal/profiles/:username).
    credentials.internal ??= randomPassword();
    const internalToken = credentials.internal;
    writeCredentials(opts.credentialsFile, credentials);
    const databases = await ensureServiceRoles(databaseUrl, credentials.postgres);
    say(
      `postgres roles: ${SCHEMA_SERVICES.map((s) => `${databases[s].role}, ${databases[s].ownerRole}`).join(', ')}`,
    );

    // Migrations: each service's own migrate command, exactly as in production.
    for (const app of MIGRATED) {
      const migrate = ServiceProcess.spawn(
        app,
        { DATABASE_URL: databases[app].migrateUrl },
        opts.build === 'dist' ? { build: 'dist', entry: 'dist/migrate.js' } : { entry: 'src/migrate.ts' },
      );
      const { code } = await migrate.exited;
      if (code !== 0) throw new Error(`${app} migrations failed: ${migrate.stderr.trim()}`);
      say(`${app} migrations: ${migrate.stdout.trim().split('\n').join(', ')}`);
    }

    // A real OpenID provider on loopback, standing in for Google.
    const oidc = await startOpenIdProvider();
    cleanups.push(() => oidc.stop());
    say(`openid provider (standing in for Google) ready at ${oidc.issuer.url}`);
    // A real SMTP server on loopback that receives every email (unless a real one is given).
    let smtp: SmtpTestServer | null = null;
    let smtpUrl = opts.smtpUrl;
    if (!smtpUrl) {
      const mailLog = join(logsDir, 'mail.log');
      const sink = await SmtpTestServer.start({
        onMessage: (mail) =>
          appendFileSync(mailLog, `--- to ${mail.to.join(', ')}: ${mail.subject}\n${mail.text}\n`, {
            mode: 0o600,
          }),
      });
      cleanups.push(() => sink.stop());
      smtp = sink;
      smtpUrl = sink.url;
      say(`mail sink ready at ${sink.url} (mail: ${mailLog})`);
    }
    const gatewayPort = opts.gatewayPort || (await freePort());
    const gatewayHost = opts.gatewayHost ?? '127.0.0.1';
    const publicHost = gatewayHost === '0.0.0.0' ? '127.0.0.1' : gatewayHost;
    // Content asks auth for profiles its projection has not received yet, so auth's port is known first.
    const authPort = String(await freePort());

    // Services: the stack's defaults, then the caller's settings, then the wiring, which always wins.
    const settings = (name: ServiceName): Record<string, string> => {
      const values: Record<string, string> = {
        REDIS_KEY_PREFIX: keyPrefix,
        ...LOCAL_DEFAULTS,
        ...(name === 'notifier' ? { PUBLIC_URL: `http://${publicHost}:${gatewayPort}` } : {}),
        ...opts.env,
        ...opts.serviceEnv?.[name],
      };
      if (values.REDIS_KEY_PREFIX !== keyPrefix)
        throw new Error(
          `${name} would use the Redis key prefix ${values.REDIS_KEY_PREFIX}, the others ${keyPrefix}: the services' Redis users allow one prefix`,
        );
      return values;
    };
    const id = opts.identity;
    const verifying: Wiring =
      'publicKeysFile' in id
        ? { IDENTITY_PUBLIC_KEYS_FILE: id.publicKeysFile }
        : { IDENTITY_PUBLIC_KEYS: id.publicKeyText };
    const signing: Wiring =
      'privateKeyFile' in id
        ? { IDENTITY_PRIVATE_KEY_FILE: id.privateKeyFile }
        : { IDENTITY_PRIVATE_KEY: id.privateKeyText };
    const common: Wiring = { HOST: '127.0.0.1', PORT: '0', ...verifying };
    // A service's URL of a role: its own user on the server, the Sentinel group or the cluster.
    const redisUrl = (role: Role, service: ServiceName | 'audit') =>
      clusters[role]?.urlFor(service) ??
      (role !== 'cache' && service !== 'audit' ? sentinels[role] : undefined)?.urlFor(service) ??
      redis[role].urlFor(service);
    const wiring: Record<Exclude<ServiceName, 'gateway'>, Wiring> = {
      auth: {
        ...common,
        PORT: authPort,
        DATABASE_URL: databases.auth.url,
        REDIS_SESSION_URL: redisUrl('session', 'auth'),
        REDIS_QUEUE_URL: redisUrl('queue', 'auth'),
        GOOGLE_ISSUER: oidc.issuer.url ?? '',
        GOOGLE_CLIENT_ID: 'atoll-local',
        GOOGLE_CLIENT_SECRET: 'atoll-local-secret',
        GOOGLE_REDIRECT_URL: `http://${publicHost}:${gatewayPort}/api/auth/google/callback`,
        INTERNAL_TOKEN: internalToken,
      },
      content: {
        ...common,
        DATABASE_URL: databases.content.url,
        REDIS_CACHE_URL: redisUrl('cache', 'content'),
        REDIS_QUEUE_URL: redisUrl('queue', 'content'),
        AUTH_URL: `http://127.0.0.1:${authPort}`,
        AUTH_INTERNAL_TOKEN: internalToken,
      },
      notifier: {
        ...common,
        DATABASE_URL: databases.notifier.url,
        REDIS_QUEUE_URL: redisUrl('queue', 'notifier'),
        REDIS_SESSION_URL: redisUrl('session', 'notifier'),
        // The key-space audit's user, for REDIS_AUDIT_INTERVAL_MS (off unless set).
        REDIS_AUDIT_CACHE_URL: redisUrl('cache', 'audit'),
        REDIS_AUDIT_SESSION_URL: redisUrl('session', 'audit'),
        REDIS_AUDIT_QUEUE_URL: redisUrl('queue', 'audit'),
        SMTP_URL: smtpUrl,
      },
    };
    const envs = {} as Record<ServiceName, Record<string, string>>;
    for (const name of ['auth', 'content', 'notifier'] as const)
      envs[name] = { ...settings(name), ...wiring[name] };
    const services = {} as Record<ServiceName, ServiceProcess>;
    const instances: Record<Backend, ServiceProcess[]> = { auth: [], content: [], notifier: [] };
    const logFileOf = (name: ServiceName, index: number) =>
      join(logsDir, index === 0 ? `${name}.log` : `${name}-${index + 1}.log`);
    const spawnInstance = async (name: ServiceName, index: number, env: Record<string, string>) => {
      const logFile = logFileOf(name, index);
      const proc = await ServiceProcess.start(name, env, {
        ...(opts.build ? { build: opts.build } : {}),
        onOutput: (chunk) => appendFileSync(logFile, chunk, { mode: 0o600 }),
      });
      if (!opts.retainLogs) proc.stopRetaining();
      say(`${name}${index === 0 ? '' : ` #${index + 1}`} ready at ${proc.url} (logs: ${logFile})`);
      return proc;
    };
    const startInstance = async (name: Backend, index: number) => {
      // Every instance after the first on a port of its own.
      const env = index === 0 ? envs[name] : { ...envs[name], PORT: String(await freePort()) };
      const proc = await spawnInstance(name, index, env);
      instances[name][index] = proc;
      if (index === 0) services[name] = proc;
      // Whatever process holds the slot when the stack stops.
      cleanups.push(async () => void (await instances[name][index]?.stop()));
    };
    await Promise.all(
      (['auth', 'content', 'notifier'] as const).flatMap((name) =>
        Array.from({ length: Math.max(1, opts.instances?.[name] ?? 1) }, (_, i) => startInstance(name, i)),
      ),
    );
    const urls = (name: Backend) => instances[name].map((p) => p.url).join(',');
    const gatewayWiring: Wiring = {
      ...signing,
      PORT: String(gatewayPort),
      HOST: gatewayHost,
      REDIS_SESSION_URL: redisUrl('session', 'gateway'),
      AUTH_URL: urls('auth'),
      CONTENT_URL: urls('content'),
      NOTIFIER_URL: urls('notifier'),
    };
    envs.gateway = { ...settings('gateway'), ...gatewayWiring };
    const gateway = await spawnInstance('gateway', 0, envs.gateway);
    services.gateway = gateway;
    cleanups.push(async () => void (await gateway.stop()));

    const replaceInstance: Stack['replaceInstance'] = async (name, index, { signal = 'SIGTERM' } = {}) => {
      const old = instances[name][index];
      if (!old) throw new Error(`${name} has no instance ${index}`);
      const exit = await old.stop(signal);
      const port = new URL(old.url).port;
      const proc = await spawnInstance(name, index, { ...envs[name], PORT: port });
      instances[name][index] = proc;
      if (index === 0) services[name] = proc;
      await proc.waitReady();
      return { exit, process: proc };
    };

    return {
      gatewayUrl: services.gateway.url,
      oidc,
      smtp,
      databaseUrl,
      databases,
      redis,
      sentinels,
      clusters,
      services,
      instances,
      envOf: (name) => ({ ...envs[name] }),
      replaceInstance,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * oauth2-mock-server on a free loopback port with a fresh RS256 key. Every ID token it signs describes
 * one local user with a verified email, unless a test hooks the token first.
 */
async function startOpenIdProvider(): Promise<OAuth2Server> {
  const server = new OAuth2Server();
  await server.issuer.keys.generate('RS256');
  server.service.on(Events.BeforeTokenSigning, (token) => {
    // Runs before any hook a test adds later, so a test's hook has the last word.
    Object.assign(token.payload, {
      sub: 'local-google-user',
      email: 'google.user@example.com',
      email_verified: true,
      name: 'Google User',
    });
  });
  await server.start(await freePort(), '127.0.0.1');
  return server;
}

function readCredentials(file: string | undefined): Credentials {
  if (!file || !existsSync(file)) return { redis: {}, postgres: {} };
  const kept = JSON.parse(readFileSync(file, 'utf8')) as Partial<Credentials>;
  return {
    redis: kept.redis ?? {},
    postgres: kept.postgres ?? {},
    ...(kept.internal ? { internal: kept.internal } : {}),
  };
}

function writeCredentials(file: string | undefined, credentials: Credentials): void {
  if (!file) return;
  writeFileSync(file, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  chmodSync(file, 0o600); // a file from before keeps its mode otherwise
}

/** Creates `name` on the server if it does not exist yet; returns its URL. */
async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('select 1 from pg_database where datname = $1', [name]);
    if (!rowCount) await client.query(`create database "${name}"`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
