import type { RedisRole } from '@atoll/redis-keys';
import { Redis, type RedisOptions } from 'ioredis';
import { checkRole, RedisRoleError, type ServerSettings } from './roles.ts';

/** The part of a pino logger the clients use. */
export interface Log {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * How a client behaves when Redis is away:
 * - `producer`: request paths. Fails fast (no offline queue, one retry, a command timeout) so a request
 *   answers 503 quickly instead of hanging.
 * - `worker`: BullMQ workers and stream consumers. Waits for Redis forever (`maxRetriesPerRequest: null`,
 *   as BullMQ requires for blocking connections).
 * - `subscriber`: pub/sub. Waits and resubscribes on reconnect.
 */
export type ClientUse = 'producer' | 'worker' | 'subscriber';

export interface RedisClientOptions {
  url: string;
  role: RedisRole;
  use: ClientUse;
  /** Shows in CLIENT LIST and in the logs, e.g. `gateway:session`. */
  name: string;
  log: Log;
  /** Producer command timeout in ms (default 2000). */
  commandTimeoutMs?: number;
  /**
   * Producers only: send the commands issued in the same tick in one write (ioredis auto-pipelining).
   * Worth it on a client shared by many concurrent requests (the gateway's session lookups); never for
   * BullMQ connections.
   */
  autoPipelining?: boolean;
}

const settingsByUse: Record<ClientUse, RedisOptions> = {
  producer: { enableOfflineQueue: false, maxRetriesPerRequest: 1 },
  worker: { enableOfflineQueue: true, maxRetriesPerRequest: null },
  subscriber: { enableOfflineQueue: true, maxRetriesPerRequest: null },
};

/** Reconnect quickly at first, then every 2 s at most, forever: readiness reports the outage meanwhile. */
const retryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2000);

export function addressOf(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '6379'}`;
}

/**
 * Builds a client for one role. It does not connect: call `connectRedis` to connect and verify the role.
 * Every client has an error listener that logs once per outage (not once per reconnect attempt).
 */
export function createRedisClient(opts: RedisClientOptions): Redis {
  const client = new Redis(opts.url, {
    ...settingsByUse[opts.use],
    lazyConnect: true,
    connectionName: opts.name,
    connectTimeout: 2000,
    retryStrategy,
    // BullMQ connections must never auto-pipeline; a producer may ask for it.
    enableAutoPipelining: opts.use === 'producer' && opts.autoPipelining === true,
    ...(opts.use === 'producer' ? { commandTimeout: opts.commandTimeoutMs ?? 2000 } : {}),
  });
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    opts.log.warn({ err: { message: err.message }, redis: opts.name }, `redis-${opts.role} unreachable`);
  });
  client.on('ready', () => {
    if (down) opts.log.info({ redis: opts.name }, `redis-${opts.role} reachable again`);
    down = false;
  });
  return client;
}

/** The `field:value` lines of an INFO reply. */
export function infoFields(text: string): Record<string, string> {
  const map: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) map[line.slice(0, colon)] = line.slice(colon + 1).trim();
  }
  return map;
}

/**
 * Reads the settings the role check needs from INFO (memory and persistence), which every service's ACL
 * user may run; CONFIG GET is the admin's alone (see @atoll/redis-keys acl.ts).
 */
export async function readSettings(client: Redis): Promise<ServerSettings> {
  // Two sections in one INFO: Redis 7 and later.
  const map = infoFields(String(await client.call('INFO', 'memory', 'persistence')));
  return {
    maxmemory: Number(map.maxmemory ?? 0),
    maxmemoryPolicy: map.maxmemory_policy ?? 'unknown',
    appendonly: map.aof_enabled === '1',
  };
}

/** Throws `RedisRoleError` naming every setting that is wrong for the role. */
export async function verifyRole(client: Redis, role: RedisRole, address: string): Promise<void> {
  const problems = checkRole(role, await readSettings(client));
  if (problems.length > 0) throw new RedisRoleError(role, address, problems);
}

/**
 * Creates, connects and verifies a client. Rejects with a clear message when the server cannot be
 * reached within `connectWaitMs` or is configured for another role; the caller (main.ts) exits non-zero.
 * After a reconnect the role is checked again; a server that changed role is logged as an error and the
 * client reports `roleOk() === false`, which readiness turns into a 503.
 */
export async function connectRedis(
  opts: RedisClientOptions & { connectWaitMs?: number },
): Promise<RoleCheckedRedis> {
  const client = createRedisClient(opts) as RoleCheckedRedis;
  const address = addressOf(opts.url);
  let roleOk = true;
  client.roleOk = () => roleOk;
  client.redisRole = opts.role;
  const wait = opts.connectWaitMs ?? 5000;
  const connected = client.connect();
  connected.catch(() => undefined); // the retry strategy keeps trying; the timer below decides
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`redis-${opts.role} at ${address} did not answer within ${wait} ms`)),
      wait,
    );
  });
  try {
    await Promise.race([waitReady(client), deadline]);
    await verifyRole(client, opts.role, address);
  } catch (err) {
    client.disconnect();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  client.on('ready', () => {
    verifyRole(client, opts.role, address).then(
      () => {
        roleOk = true;
      },
      (err: Error) => {
        roleOk = !(err instanceof RedisRoleError);
        if (!roleOk) opts.log.error({ redis: opts.name }, err.message);
      },
    );
  });
  return client;
}

export type RoleCheckedRedis = Redis & { roleOk(): boolean; redisRole: RedisRole };

function waitReady(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => client.once('ready', () => resolve()));
}

/** True when the client answers PING within `timeoutMs`; never throws, never hangs. */
export async function pingRedis(client: Redis, timeoutMs = 1000): Promise<boolean> {
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  try {
    const reply = await Promise.race([
      client.ping(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return reply === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Closes gracefully (QUIT), falling back to a hard disconnect when the server is away. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/**
 * True for the errors a client gives when its server cannot be reached or does not answer in time (as
 * opposed to a command error): callers turn these into a 503.
 */
export function isRedisUnavailable(err: unknown): boolean {
  const message = (err as Error | undefined)?.message ?? '';
  const name = (err as Error | undefined)?.name ?? '';
  return (
    name === 'MaxRetriesPerRequestError' ||
    // ioredis's own wording: a fail-fast client never surfaces a socket error (ECONNREFUSED…) to a
    // command, and matching those would mistake a PostgreSQL outage for a Redis one.
    /Stream isn't writeable|Connection is closed|Command timed out/.test(message)
  );
}
