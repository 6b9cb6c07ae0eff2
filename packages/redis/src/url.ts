/**
 * The three URL forms of a Redis role:
 *
 * - one server: `redis://<user>:<password>@<host>:<port>` (or `rediss://` for TLS), handed to ioredis as is;
 * - a Redis Cluster: `redis+cluster://<user>:<password>@<host>:<port>,<host>:<port>,…`, the addresses being
 *   seed nodes (port 6379 when left out): the client learns every node from the first that answers. The
 *   user and password are the service's ACL user, the same on every node;
 * - a Sentinel group: `redis+sentinel://<user>:<password>@<host>:<port>,<host>:<port>,…/<master name>`,
 *   the addresses being the sentinels' (port 26379 when left out). The user and password are the
 *   service's ACL user, on the data nodes and, unless `sentinelUsername` / `sentinelPassword` say
 *   otherwise in the query, on the sentinels too (atoll's sentinels carry the same service users,
 *   allowed only to ask where the nodes are: @atoll/redis-keys acl.ts).
 *
 * A malformed URL is a `RedisUrlError`: one line that names the problem and never the password.
 */
import type { RedisOptions } from 'ioredis';

export const SENTINEL_SCHEME = 'redis+sentinel:';
export const CLUSTER_SCHEME = 'redis+cluster:';
const DEFAULT_SENTINEL_PORT = 26379;
const DEFAULT_NODE_PORT = 6379;
const SENTINEL_PARAMS = ['sentinelUsername', 'sentinelPassword'] as const;

export const SENTINEL_URL_FORM =
  'redis+sentinel://<user>:<password>@<host>:<port>[,<host>:<port>…]/<master name>[?sentinelUsername=…&sentinelPassword=…]';

export const CLUSTER_URL_FORM = 'redis+cluster://<user>:<password>@<host>:<port>[,<host>:<port>…]';

export class RedisUrlError extends Error {
  constructor(problem: string) {
    super(`invalid Redis URL: ${problem}`);
    this.name = 'RedisUrlError';
  }
}

export interface SentinelTarget {
  kind: 'sentinel';
  /** The master name the sentinels monitor. */
  name: string;
  sentinels: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
  sentinelUsername: string | undefined;
  sentinelPassword: string | undefined;
}

export interface ClusterTarget {
  kind: 'cluster';
  /** Seed nodes: any node of the cluster, primary or replica, tells the client where the others are. */
  nodes: Array<{ host: string; port: number }>;
  username: string | undefined;
  password: string | undefined;
}

export type RedisTarget = { kind: 'server'; url: string } | SentinelTarget | ClusterTarget;

export function isSentinelUrl(url: string): boolean {
  return url.startsWith(`${SENTINEL_SCHEME}//`);
}

export function isClusterUrl(url: string): boolean {
  return url.startsWith(`${CLUSTER_SCHEME}//`);
}

export function parseRedisUrl(url: string): RedisTarget {
  if (isClusterUrl(url)) return parseClusterUrl(url);
  if (!isSentinelUrl(url)) {
    if (!/^rediss?:\/\/\S+$/.test(url))
      throw new RedisUrlError(`expected redis://…, rediss://…, ${SENTINEL_URL_FORM} or ${CLUSTER_URL_FORM}`);
    return { kind: 'server', url };
  }
  const match = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/?#@]+)\/([^/?#]*)(?:\?([^#]*))?$/.exec(url);
  if (!match) throw new RedisUrlError(`expected ${SENTINEL_URL_FORM}`);
  const [, userinfo, hosts = '', rawName = '', query] = match;
  const name = decode(rawName, 'the master name');
  if (!name) throw new RedisUrlError(`the master name is missing after the sentinels: ${SENTINEL_URL_FORM}`);
  const sentinels = hosts.split(',').map((text) => hostAddress(text, 'sentinel', DEFAULT_SENTINEL_PORT));
  const { username, password } = credentials(userinfo);
  const params = new URLSearchParams(query ?? '');
  for (const key of params.keys()) {
    if (!(SENTINEL_PARAMS as readonly string[]).includes(key))
      throw new RedisUrlError(`unknown parameter ${key} (known: ${SENTINEL_PARAMS.join(', ')})`);
  }
  return {
    kind: 'sentinel',
    name,
    sentinels,
    username,
    password,
    sentinelUsername: params.get('sentinelUsername') ?? username,
    sentinelPassword: params.get('sentinelPassword') ?? password,
  };
}

/**
 * `redis+cluster://<user>:<password>@<seed>,<seed>,…`: no path (a cluster has one database and no
 * name) and no query.
 */
function parseClusterUrl(url: string): ClusterTarget {
  const match = /^redis\+cluster:\/\/(?:([^@/]*)@)?([^/?#@]+)\/?$/.exec(url);
  if (!match) throw new RedisUrlError(`expected ${CLUSTER_URL_FORM} (no path, no query)`);
  const [, userinfo, hosts = ''] = match;
  const nodes = hosts.split(',').map((text) => hostAddress(text, 'node', DEFAULT_NODE_PORT));
  return { kind: 'cluster', nodes, ...credentials(userinfo) };
}

/** The user and password of `user:password` (percent-encoded), each undefined when empty or absent. */
function credentials(userinfo: string | undefined): {
  username: string | undefined;
  password: string | undefined;
} {
  if (userinfo === undefined) return { username: undefined, password: undefined };
  const colon = userinfo.indexOf(':');
  return {
    username: decode(colon < 0 ? userinfo : userinfo.slice(0, colon), 'the user') || undefined,
    password: colon < 0 ? undefined : decode(userinfo.slice(colon + 1), 'the password') || undefined,
  };
}

/** One `<host>[:<port>]` of a list (`[v6]` in brackets), `what` naming it in the error. */
function hostAddress(text: string, what: string, defaultPort: number): { host: string; port: number } {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]\s]+)(?::(\d{1,5}))?$/.exec(text);
  if (!m?.[1]) throw new RedisUrlError(`the ${what} address "${text}" is not <host>:<port>`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (port < 1 || port > 65535) throw new RedisUrlError(`the ${what} port in "${text}" is not 1-65535`);
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new RedisUrlError(`${what} is not percent-encoded correctly`);
  }
}

/** The ioredis options of a Sentinel group: the current master, found through the sentinels. */
export function sentinelOptions(t: SentinelTarget): RedisOptions {
  return {
    sentinels: t.sentinels,
    name: t.name,
    role: 'master',
    ...(t.username ? { username: t.username } : {}),
    ...(t.password ? { password: t.password } : {}),
    ...(t.sentinelUsername ? { sentinelUsername: t.sentinelUsername } : {}),
    ...(t.sentinelPassword ? { sentinelPassword: t.sentinelPassword } : {}),
    // A sentinel that does not answer in time is skipped for the next one.
    sentinelCommandTimeout: 1000,
    // When no sentinel answers: try again soon, forever (readiness reports the outage meanwhile).
    sentinelRetryStrategy: (attempt: number) => Math.min(100 * attempt, 1000),
  };
}

/** Where a URL points, without any credential: `127.0.0.1:6379`, or the sentinel group. */
export function addressOf(url: string): string {
  const target = parseRedisUrl(url);
  if (target.kind === 'sentinel')
    return `sentinel group ${target.name} (${target.sentinels.map((s) => `${s.host}:${s.port}`).join(',')})`;
  if (target.kind === 'cluster')
    return `cluster (seeds ${target.nodes.map((n) => `${n.host}:${n.port}`).join(',')})`;
  const u = new URL(url);
  return `${u.hostname}:${u.port || '6379'}`;
}
