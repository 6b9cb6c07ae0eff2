import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Identity } from '@atoll/identity';
import { connectRedis, isCluster, type RedisClient, type RoleCheckedRedis } from '@atoll/redis';
import {
  gatewayHeaders,
  identityKeyPair,
  ownedTempDir,
  removeOwnedDir,
  type Stack,
  type StackOptions,
  startStack,
  type TestDatabase,
  testDatabase,
} from '@atoll/testkit';
import pg from 'pg';
import type { apiClient } from './api.ts';

/** The gateway's identity key pair in every test stack of this process (tests sign as the gateway with it). */
export const IDENTITY_KEYS = identityKeyPair();

/**
 * Every test client calls from 127.0.0.1, so the gateway's per-address limits would make unrelated tests
 * depend on how many requests came before; the limits have their own tests (rate-limit tests).
 */
export const GENEROUS_LIMITS = {
  RATE_LIMIT_ANONYMOUS_MAX: '100000',
  RATE_LIMIT_USER_MAX: '100000',
  RATE_LIMIT_ADDRESS_MAX: '100000',
  RATE_LIMIT_AUTH_MAX: '100000',
  RATE_LIMIT_MAIL_MAX: '100000',
  // The same for auth's hashing pool: one address may fill it (password-limits.test.ts tests the pool).
  PASSWORD_HASH_PER_CLIENT: '1000',
  PASSWORD_HASH_QUEUE: '1000',
  // And auth's sign-ups per address (password-limits.test.ts tests the limit).
  REGISTRATION_MAX_PER_ADDRESS: '100000',
};

/**
 * Test stacks register many accounts on small machines: new password hashes at Argon2id m = 19 MiB,
 * t = 2 (OWASP's minimum, the lowest cost auth accepts). Tests of the cost itself set their own.
 */
export const TEST_PASSWORD_COST = { PASSWORD_ARGON2_MEMORY_KIB: '19456', PASSWORD_ARGON2_ITERATIONS: '2' };

/**
 * The roles every test stack runs as a Redis Cluster: with `ATOLL_TEST_REDIS=cluster` all three (the
 * e2e-cluster project re-runs some e2e files so), with `cluster:<role>,<role>` the roles named; else none.
 */
export const CLUSTER_ROLES = clusterRoles(process.env.ATOLL_TEST_REDIS);

function clusterRoles(setting: string | undefined): NonNullable<StackOptions['cluster']> {
  if (setting === 'cluster') return ['cache', 'session', 'queue'];
  const named = /^cluster:(.+)$/.exec(setting ?? '')?.[1]?.split(',') ?? [];
  const roles = named.filter((r): r is 'cache' | 'session' | 'queue' =>
    ['cache', 'session', 'queue'].includes(r),
  );
  if (roles.length !== named.length)
    throw new Error(`ATOLL_TEST_REDIS=${setting}: roles are cache, session, queue`);
  return roles;
}

/**
 * The whole stack, as the local stack command runs it, on a fresh database and fresh Redis folders;
 * `instances` runs more than one instance of a service behind the gateway; `keepCredentials` keeps the
 * passwords in `<dataDir>/credentials.json`, as `npm start` does.
 */
export async function startTestStack(
  label: string,
  env: Record<string, string> = {},
  opts: Pick<StackOptions, 'instances' | 'sentinel' | 'cluster'> & { keepCredentials?: boolean } = {},
): Promise<{ stack: Stack; dataDir: string; dispose: () => Promise<void> }> {
  const database: TestDatabase = await testDatabase(label);
  const dataDir = await ownedTempDir(`stack-${label}`);
  const { keepCredentials, ...stackOpts } = opts;
  const stack = await startStack({
    dataDir,
    databaseUrl: database.url,
    identity: IDENTITY_KEYS,
    keyPrefix: `t${randomBytes(4).toString('hex')}`,
    retainLogs: true,
    env: { ...GENEROUS_LIMITS, ...TEST_PASSWORD_COST, ...env },
    // As npm start keeps them (credentials.json in the data folder), for tools that read them.
    ...(keepCredentials ? { credentialsFile: join(dataDir, 'credentials.json') } : {}),
    ...(CLUSTER_ROLES.length > 0 ? { cluster: CLUSTER_ROLES } : {}),
    ...stackOpts,
  });
  return {
    stack,
    dataDir,
    dispose: async () => {
      // Every command a service was refused by its Redis ACL user is a permission missing from the key
      // map (@atoll/redis-keys): a test that refuses on purpose clears the log itself.
      const refused = await aclRefusals(stack);
      const slotErrors = crossSlotErrors(stack);
      await stack.stop();
      await database.drop();
      removeOwnedDir(dataDir);
      if (refused.length > 0) throw new Error(`Redis refused the services: ${refused.join('; ')}`);
      if (slotErrors.length > 0)
        throw new Error(`commands over keys of several slots: ${slotErrors.slice(0, 5).join('; ')}`);
    },
  };
}

/**
 * The log lines of every service process in which a Redis Cluster refused a command for naming keys of
 * several slots (CROSSSLOT) or a script for touching a key it was not given in another slot, or ioredis
 * refused a pipeline over several nodes' slots: whatever
 * the topology, none may appear (a single server accepts such commands, so they hide until a cluster).
 */
export function crossSlotErrors(stack: Stack): string[] {
  const processes = [stack.services.gateway, ...Object.values(stack.instances).flat()];
  return processes.flatMap((proc) =>
    [...proc.logs.map((line) => JSON.stringify(line)), ...proc.stderr.split('\n')]
      .filter((line) => /CROSSSLOT|non local key|same slots allocation group/i.test(line))
      .map((line) => `${proc.name}: ${line.slice(0, 300)}`),
  );
}

/** What the stack's Redis servers refused a service user (ACL LOG), as `role user: command object`. */
export async function aclRefusals(stack: Stack): Promise<string[]> {
  const refused: string[] = [];
  // Each server of a role: its one server, or every node of its Sentinel group or cluster (and below,
  // every sentinel).
  const servers = (['cache', 'session', 'queue'] as const).flatMap((role) => {
    const group = stack.clusters[role] ?? (role === 'cache' ? undefined : stack.sentinels[role]);
    return (group?.nodes ?? [stack.redis[role]]).map((server) => ({ role, server }));
  });
  const record = (role: string, entries: unknown[][]) => {
    for (const entry of entries) {
      const fields = new Map<string, unknown>();
      for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
      refused.push(
        `${role} ${fields.get('username')}: ${fields.get('reason')} ${fields.get('object')} (${fields.get('context')})`,
      );
    }
  };
  for (const role of ['session', 'queue'] as const) {
    const group = stack.sentinels[role];
    if (group) record(`${role} sentinel`, await group.sentinelAclLog());
  }
  for (const { role, server } of servers) {
    if (!server.running) continue;
    // A connection to this one node (a cluster node answers ACL LOG about itself).
    const admin = await connectRedis({
      url: server.url,
      role,
      use: 'producer',
      name: `test:${role}`,
      log: silent,
    }).catch(() => null);
    if (!admin) continue;
    try {
      record(role, (await admin.call('ACL', 'LOG', '128')) as unknown[][]);
    } finally {
      admin.disconnect();
    }
  }
  return refused;
}

/** Polls until `check` is true or the time is up; returns the last result. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const silent = { info() {}, warn() {}, error() {} };

/** A client of one of the stack's Redis servers, for a test to look at what the services wrote. */
export function redisOf(
  stack: Stack,
  role: 'cache' | 'session' | 'queue',
  use: 'producer' | 'worker' = 'producer',
): Promise<RoleCheckedRedis> {
  const url =
    stack.clusters[role]?.url ??
    (role === 'cache' ? undefined : stack.sentinels[role])?.url ??
    stack.redis[role].url;
  return connectRedis({ url, role, use, name: `test:${role}`, log: silent });
}

/** Stops a role's server, or every node of its cluster (an outage of the whole role). */
export async function stopRedis(stack: Stack, role: 'cache' | 'session' | 'queue'): Promise<void> {
  const cluster = stack.clusters[role];
  if (cluster) await cluster.stop();
  else await stack.redis[role].stop();
}

/** Starts what `stopRedis` stopped; a cluster once it is whole again (cluster_state:ok everywhere). */
export async function restartRedis(stack: Stack, role: 'cache' | 'session' | 'queue'): Promise<void> {
  const cluster = stack.clusters[role];
  if (!cluster) return stack.redis[role].restart();
  await Promise.all(cluster.nodes.map((node) => node.restart()));
  await cluster.waitHealthy();
}

/** Every key of a role's server, or of every primary of its cluster (where FLUSHALL reaches one node). */
export async function flushAll(client: RedisClient): Promise<void> {
  await Promise.all((isCluster(client) ? client.nodes('master') : [client]).map((node) => node.flushall()));
}

/** The names of every key matching `pattern` (KEYS: tests only), on every primary of a cluster. */
export async function keysOf(client: RedisClient, pattern: string): Promise<string[]> {
  const nodes = isCluster(client) ? client.nodes('master') : [client];
  return (await Promise.all(nodes.map((node) => node.keys(pattern)))).flat();
}

/**
 * A request straight to one content instance (`base`), with the assertion the gateway would send for
 * `identity`; `queries` is the SQL count content reports in Server-Timing (SERVER_TIMING=true), else -1.
 */
export async function directToContent(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  identity: Identity | null = null,
): Promise<{ status: number; body: any; queries: number }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...gatewayHeaders(IDENTITY_KEYS, 'content', { method, url: path, identity }),
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const queries = Number(/desc="(\d+) queries"/.exec(res.headers.get('server-timing') ?? '')?.[1] ?? -1);
  return { status: res.status, body: (await res.json().catch(() => null)) as any, queries };
}

/** The identity the gateway asserts for the session `token` signs in to. */
export async function sessionIdentity(api: ReturnType<typeof apiClient>, token: string): Promise<Identity> {
  const session = (await api('GET', '/api/auth/session', { token })).body.session;
  return {
    userId: session.userId,
    username: session.username,
    sessionId: session.id,
    roles: session.roles,
  };
}

const CODE_SUBJECT = 'Your atoll verification code: ';

/**
 * Verifies the address of the account `token` signs in to, as its owner would: asks for a code, reads
 * it from the stack's mail sink, confirms it; then waits until the notifier knows the address is
 * verified (notification mail goes only to verified addresses, and only verified accounts' actions are
 * mailed), so that what the test does next is mailed.
 */
export async function verifyEmail(
  api: ReturnType<typeof apiClient>,
  stack: Stack,
  token: string,
  email: string,
): Promise<void> {
  const codes = () => (stack.smtp?.to(email) ?? []).filter((m) => m.subject.startsWith(CODE_SUBJECT));
  const before = codes().length;
  const asked = await api('POST', '/api/user/verification', { token });
  if (asked.status !== 202) throw new Error(`asking for a code for ${email} answered ${asked.status}`);
  if (!(await eventually(async () => codes().length > before, 15_000)))
    throw new Error(`no code for ${email}`);
  const code = codes().at(-1)?.subject.slice(CODE_SUBJECT.length);
  const confirmed = await api('POST', '/api/user/verification/confirm', {
    token,
    body: { verification: { code } },
  });
  if (confirmed.status !== 200) throw new Error(`confirming ${email} answered ${confirmed.status}`);
  const db = new pg.Client({ connectionString: stack.databaseUrl });
  await db.connect();
  try {
    const known = await eventually(async () => {
      const { rows } = await db.query(
        'SELECT 1 FROM notifier.recipients WHERE lower(email) = lower($1) AND email_verified',
        [email],
      );
      return rows.length > 0;
    }, 15_000);
    if (!known) throw new Error(`the notifier never heard that ${email} is verified`);
  } finally {
    await db.end();
  }
}

/**
 * Signs up one account per name (`<name>@example.com`) and waits until content knows each profile (its
 * projection follows auth's events); returns their tokens by name.
 */
export async function signUpAll(
  api: ReturnType<typeof apiClient>,
  names: string[],
  password: string,
): Promise<Record<string, string>> {
  const tokens: Record<string, string> = {};
  for (const name of names) {
    const res = await api('POST', '/api/users', {
      body: { user: { username: name, email: `${name}@example.com`, password } },
    });
    tokens[name] = res.body.user.token as string;
    await eventually(async () => (await api('GET', `/api/profiles/${name}`)).status === 200);
  }
  return tokens;
}
