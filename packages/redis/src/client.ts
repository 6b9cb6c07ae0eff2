import type { RedisRole } from '@atoll/redis-keys';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { checkRole, RedisRoleError, type ServerSettings } from './roles.ts';
import { defineScriptsOn } from './script.ts';
import { addressOf, type ClusterTarget, parseRedisUrl, type SentinelTarget, sentinelOptions } from './url.ts';

/**
 * A client of one role: a `Redis` (one server, or the primary of a Sentinel group) or a `Cluster` (a
 * Redis Cluster, whose commands ioredis routes to the node that serves each key's slot). Both have the
 * same commands; what differs is that every command, transaction and script must keep to keys of one
 * slot (`{…}` hash tags, @atoll/redis-keys) and that MGET over several slots is `getMany`.
 */
export type RedisClient = Redis | Cluster;

/** True for a Redis Cluster client. */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster;
}

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

/**
 * After a failover the old primary, if it is still up, answers writes with READONLY until it is told it
 * is a replica: reconnect, which asks the sentinels for the new primary, and send the command again
 * (a worker's waits in the offline queue; a producer's fails fast as "unavailable", a 503).
 */
function reconnectOnReadonly(opts: RedisClientOptions) {
  return (err: Error): 2 | false => {
    if (!err.message.startsWith('READONLY')) return false;
    opts.log.warn(
      { redis: opts.name },
      `redis-${opts.role} primary is now a replica (READONLY): reconnecting`,
    );
    return 2;
  };
}

/**
 * Builds a client for one role. It does not connect: call `connectRedis` to connect and verify the role.
 * Every client has an error listener that logs once per outage (not once per reconnect attempt).
 */
export function createRedisClient(opts: RedisClientOptions): RedisClient {
  const target = parseRedisUrl(opts.url);
  const options: RedisOptions = {
    ...settingsByUse[opts.use],
    lazyConnect: true,
    connectionName: opts.name,
    connectTimeout: 2000,
    retryStrategy,
    // BullMQ connections must never auto-pipeline; a producer may ask for it.
    enableAutoPipelining: opts.use === 'producer' && opts.autoPipelining === true,
    ...(opts.use === 'producer' ? { commandTimeout: opts.commandTimeoutMs ?? 2000 } : {}),
  };
  // Every client of a Sentinel group, and every duplicate() of one (BullMQ's blocking connections),
  // asks the sentinels where the primary is on each (re)connect.
  const client =
    target.kind === 'cluster'
      ? clusterClient(target, options, opts.use)
      : target.kind === 'sentinel'
        ? new Redis({ ...sentinelOptions(target), ...options, reconnectOnError: reconnectOnReadonly(opts) })
        : new Redis(target.url, options);
  // Every script atoll defines, before the client sends anything (script.ts says why).
  defineScriptsOn(client);
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

/**
 * A Cluster client with the same behaviour per use as a single server's: the offline queue, the
 * auto-pipelining and the retry strategy apply to the cluster as a whole (the offline queue holds
 * commands while no node is known), the rest to each node's connection.
 *
 * - Reads and writes go to the primaries only (`scaleReads: 'master'`): a replica may lag behind an
 *   invalidation or a counter, and reading stale data there would undo what the cache's tombstones
 *   guarantee.
 * - `MOVED`/`ASK` (a slot served elsewhere, or moving) are followed by ioredis, which refreshes its slot
 *   map on MOVED; a node that stops answering makes it refresh the map (`retryDelayOnFailover`) and
 *   send the command again until a replica is promoted, at most `maxRedirections` times (16 × 100 ms);
 *   `CLUSTERDOWN` (no primary for a slot yet) likewise. A producer's command that still fails is a
 *   "Redis unavailable" error (`isRedisUnavailable`), a 503 or a fallback; a worker's waits.
 * - A subscriber has one sharded-subscriber connection per primary (SSUBSCRIBE, see pubsub.ts).
 * - The slot map is also refreshed every 5 s (ioredis's default), so a failover the client did not
 *   witness is picked up too.
 */
function clusterClient(target: ClusterTarget, options: RedisOptions, use: ClientUse): Cluster {
  const { enableOfflineQueue, enableAutoPipelining, retryStrategy: clusterRetryStrategy, ...node } = options;
  const clusterOptions: ClusterOptions = {
    lazyConnect: true,
    ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
    ...(enableAutoPipelining === undefined ? {} : { enableAutoPipelining }),
    ...(clusterRetryStrategy ? { clusterRetryStrategy } : {}),
    scaleReads: 'master',
    slotsRefreshTimeout: 1000,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    // A subscriber subscribes per shard (SSUBSCRIBE: pubsub.ts); no other client needs the connections.
    shardedSubscribers: use === 'subscriber',
    redisOptions: {
      ...node,
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
    },
  };
  return new Cluster(target.nodes, clusterOptions);
}

/** Another connection (or, for a cluster, another set of connections) with the same options. */
export function duplicateClient(client: RedisClient): RedisClient {
  // Both branches call duplicate(): the two classes declare it with different signatures, which
  // TypeScript will not call through the union until the type is narrowed.
  const copy = isCluster(client) ? client.duplicate() : client.duplicate();
  defineScriptsOn(copy);
  return copy;
}

/**
 * The values of several keys, `null` for a missing one, in the order asked. One MGET on a single
 * server; on a cluster, where MGET may only name keys of one slot, one GET per key, sent in the same
 * tick (ioredis writes them to each node together, so the cost is one round trip per node rather than
 * per key).
 */
export async function getMany(client: RedisClient, keys: string[]): Promise<Array<string | null>> {
  if (keys.length === 0) return [];
  if (!isCluster(client)) return client.mget(keys);
  return Promise.all(keys.map((key) => client.get(key)));
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

/**
 * Throws `RedisRoleError` naming every setting that is wrong for the role. On a cluster client it checks
 * the primaries the client is connected to (a reconnect: see `verifyClusterNodes` for every node).
 */
export async function verifyRole(client: RedisClient, role: RedisRole, address: string): Promise<void> {
  const servers = isCluster(client) ? client.nodes('master') : [client];
  for (const server of servers) {
    const problems = checkRole(role, await readSettings(server));
    const where = isCluster(client)
      ? `${server.options.host}:${server.options.port} (in the ${address})`
      : address;
    if (problems.length > 0) throw new RedisRoleError(role, where, problems);
  }
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
    const target = parseRedisUrl(opts.url);
    if (target.kind === 'sentinel') await verifySentinelGroup(target, opts.role, opts.name, opts.log);
    if (isCluster(client)) await verifyClusterNodes(client, opts.role, opts.name);
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

/** A data node of a Sentinel group as the sentinels see it. */
export interface GroupNode {
  host: string;
  port: number;
  kind: 'primary' | 'replica';
  /** Subjectively or objectively down, or disconnected, in the sentinel's view. */
  down: boolean;
}

/** A short-lived connection that does not retry: for one question to one node or sentinel. */
function oneShot(opts: RedisOptions): Redis {
  const client = new Redis({
    lazyConnect: true,
    connectTimeout: 2000,
    commandTimeout: 2000,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: true,
    ...opts,
  });
  client.on('error', () => undefined);
  return client;
}

/**
 * The primary and the replicas of a Sentinel group, from the first sentinel that answers
 * (SENTINEL GET-MASTER-ADDR-BY-NAME and SENTINEL REPLICAS, under the sentinel user of the URL).
 */
export async function sentinelGroupNodes(target: SentinelTarget): Promise<GroupNode[]> {
  const problems: string[] = [];
  for (const sentinel of target.sentinels) {
    const client = oneShot({
      ...sentinel,
      ...(target.sentinelUsername ? { username: target.sentinelUsername } : {}),
      ...(target.sentinelPassword ? { password: target.sentinelPassword } : {}),
      enableReadyCheck: false,
    });
    try {
      await client.connect();
      const primary = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', target.name)) as
        | [string, string]
        | null;
      if (!primary) throw new Error(`it monitors no master named ${target.name}`);
      const replicas = (await client.call('SENTINEL', 'REPLICAS', target.name)) as string[][];
      return [
        { host: primary[0], port: Number(primary[1]), kind: 'primary', down: false },
        ...replicas.map((flat) => {
          const f = new Map<string, string>();
          for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), String(flat[i + 1]));
          const flags = (f.get('flags') ?? '').split(',');
          return {
            host: f.get('ip') ?? '',
            port: Number(f.get('port')),
            kind: 'replica' as const,
            down: flags.some((x) => x === 's_down' || x === 'o_down' || x === 'disconnected'),
          };
        }),
      ];
    } catch (err) {
      problems.push(`${sentinel.host}:${sentinel.port}: ${(err as Error).message}`);
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`no sentinel of ${target.name} answered: ${problems.join('; ')}`);
}

/**
 * Checks the settings of every node of a Sentinel group, the primary and each replica, under the
 * service's own ACL user (INFO): a replica becomes the primary on failover, so it must be fit for the
 * role before that. A replica the sentinels report down is skipped with a warning (it is checked when
 * the service next starts; a node that becomes primary is checked on reconnect like any other).
 */
export async function verifySentinelGroup(
  target: SentinelTarget,
  role: RedisRole,
  name: string,
  log: Log,
): Promise<void> {
  for (const node of await sentinelGroupNodes(target)) {
    const address = `${node.host}:${node.port} (${node.kind} of ${target.name})`;
    if (node.down) {
      log.warn({ redis: name, node: address }, `redis-${role} replica down, not checked`);
      continue;
    }
    const client = oneShot({
      host: node.host,
      port: node.port,
      connectionName: `${name}:check`,
      ...(target.username ? { username: target.username } : {}),
      ...(target.password ? { password: target.password } : {}),
    });
    try {
      await client.connect();
      await verifyRole(client, role, address);
    } finally {
      client.disconnect();
    }
  }
}

/** A node of a Redis Cluster as the slot map names it. */
export interface ClusterNode {
  host: string;
  port: number;
  kind: 'primary' | 'replica';
}

/** Every primary and replica the cluster client knows (from CLUSTER SLOTS: the nodes serving slots). */
export function clusterNodes(client: Cluster): ClusterNode[] {
  return client.nodes('all').map((node) => ({
    host: node.options.host ?? '127.0.0.1',
    port: node.options.port ?? 6379,
    kind: node.options.readOnly ? 'replica' : 'primary',
  }));
}

/**
 * Checks the settings of every node of a cluster, each primary and each replica, under the service's
 * own ACL user (INFO, on a connection of its own): a replica becomes a primary on failover, so it must
 * be fit for the role before that. A node that does not answer stops the start-up like a
 * misconfigured one: the slot map named it, so it should be up.
 */
export async function verifyClusterNodes(client: Cluster, role: RedisRole, name: string): Promise<void> {
  const { username, password } = client.options.redisOptions ?? {};
  for (const node of clusterNodes(client)) {
    const address = `${node.host}:${node.port} (${node.kind} in the cluster)`;
    const check = oneShot({
      host: node.host,
      port: node.port,
      connectionName: `${name}:check`,
      ...(username ? { username } : {}),
      ...(password ? { password } : {}),
    });
    try {
      await check.connect();
      await verifyRole(check, role, address);
    } catch (err) {
      if (err instanceof RedisRoleError) throw err;
      throw new Error(`redis-${role} at ${address} cannot be checked: ${(err as Error).message}`);
    } finally {
      check.disconnect();
    }
  }
}

export type RoleCheckedRedis = RedisClient & { roleOk(): boolean; redisRole: RedisRole };

function waitReady(client: RedisClient): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => client.once('ready', () => resolve()));
}

/** True when the client answers PING within `timeoutMs`; never throws, never hangs. */
export async function pingRedis(client: RedisClient, timeoutMs = 1000): Promise<boolean> {
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

/** How long a write waits for a replica to acknowledge it (WAIT), below the producer command timeout. */
export const REPLICA_ACK_TIMEOUT_MS = 1000;

/** A write that no replica acknowledged in time: it may still be on the primary, but it was not kept. */
export class ReplicaAckError extends Error {
  constructor(timeoutMs: number) {
    super(`no replica acknowledged the write within ${timeoutMs} ms`);
    this.name = 'ReplicaAckError';
  }
}

/**
 * The replicas a write must reach before it is acknowledged: one for a client of a Sentinel group (its
 * URL says so), none for a single server (nothing to wait for). Read from the client's own options, so
 * it holds for a duplicate() too.
 */
export function replicasToAck(client: RedisClient): number {
  if (isCluster(client)) return 0;
  return (client.options.sentinels?.length ?? 0) > 0 ? 1 : 0;
}

/**
 * Resolves once the writes this connection has sent so far reached a replica (`WAIT 1 <timeout>`);
 * rejects with `ReplicaAckError` when none acknowledges within the timeout. Used where losing an
 * acknowledged write is not acceptable (an enqueue, a sign-in): without it a primary that dies right
 * after answering takes the write with it, and the promoted replica never had it. A no-op on a single
 * server. WAIT blocks this connection (only) until the acknowledgement: one round trip to the replica.
 */
export async function waitForReplicas(
  client: RedisClient,
  timeoutMs = REPLICA_ACK_TIMEOUT_MS,
): Promise<void> {
  const replicas = replicasToAck(client);
  if (replicas === 0) return;
  const acked = Number(await client.call('WAIT', replicas, timeoutMs));
  if (acked < replicas) throw new ReplicaAckError(timeoutMs);
}

/** Closes gracefully (QUIT), falling back to a hard disconnect when the server is away. */
export async function closeRedis(client: RedisClient): Promise<void> {
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
  // A MULTI whose commands were refused as they were queued (CLUSTERDOWN while a shard fails over, and
  // ioredis ran out of retries) ends in EXECABORT; ioredis hands the refusals over as `previousErrors`.
  if (message.startsWith('EXECABORT')) {
    const previous = (err as { previousErrors?: unknown[] }).previousErrors ?? [];
    return previous.length > 0 && previous.every(isRedisUnavailable);
  }
  return (
    name === 'MaxRetriesPerRequestError' ||
    name === 'ReplicaAckError' ||
    // A write that reached a primary turned replica: the client reconnects to the new one.
    message.startsWith('READONLY') ||
    // A cluster with no primary for the slot yet (a failover under way), or with no node known.
    message.startsWith('CLUSTERDOWN') ||
    message.startsWith('TRYAGAIN') ||
    // A slot served elsewhere since a failover, answered to an auto-pipelined batch: ioredis follows a
    // MOVED only when every command of the batch got the same one, and hands the others over as they
    // are (its slot map is refreshed on the next MOVED it follows, or within 5 s).
    message.startsWith('MOVED') ||
    message.startsWith('ASK') ||
    /Cluster isn't ready|Too many Cluster redirections|Failed to refresh slots cache/.test(message) ||
    // ioredis's own wording: a fail-fast client never surfaces a socket error (ECONNREFUSED…) to a
    // command, and matching those would mistake a PostgreSQL outage for a Redis one.
    /Stream isn't writeable|Connection is closed|Command timed out/.test(message)
  );
}
