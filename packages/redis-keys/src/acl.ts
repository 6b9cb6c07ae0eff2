/**
 * Redis ACL users, generated from the key map: each service connects to each Redis role as its own user,
 * allowed only the keys and channels whose definition names it (key-map.ts `users`, QUEUE_USERS) and only
 * the commands a client of atoll's kind needs. A key added to the map without users is reachable by
 * nobody but the admin; a service that starts using a key must be named in its spec first, so the map
 * and the permissions cannot drift apart (the tests of this package and of @atoll/redis check both).
 *
 * What every service user gets:
 * - data commands (`@read`, `@write`), transactions, Lua scripts (`EVAL`/`EVALSHA`: BullMQ, the rate
 *   limiter, the locks; Redis checks every key a script touches against the same patterns), connection
 *   commands (AUTH, HELLO, CLIENT SETNAME…) and INFO (ioredis's ready check, BullMQ's version check and
 *   the role check of @atoll/redis);
 * - never anything in `@dangerous` (FLUSHALL, FLUSHDB, CONFIG, KEYS, DEBUG, SHUTDOWN, ACL, MODULE,
 *   MONITOR, CLIENT KILL/LIST, REPLICAOF, SAVE, MIGRATE, RESTORE…), nor SCRIPT FLUSH/KILL/DEBUG, FUNCTION,
 *   SCAN (except the notifier on the queue instance: EXTRA_COMMANDS), RANDOMKEY or DBSIZE;
 * - pub/sub only on its channels, and only the side it uses (PUBLISH or SUBSCRIBE).
 * The `default` user is the admin: a long random password known to the operator (and the tests' admin
 * client), never to a service. The `audit` user (given a password) is the key-space audit's on every role:
 * it lists and sizes the prefix's keys and reads nothing else (AUDIT_RULES).
 */
import { createHash } from 'node:crypto';
import { type ChannelAccess, type KeyAccess, type RedisRole, SERVICES, type Service } from './define.ts';
import { KEY_DEFINITIONS as KEY_SPECS, QUEUE_USERS } from './key-map.ts';

/** Commands that no service user may run (each in a test of @atoll/redis against a real server). */
export const DENIED_COMMANDS = [
  'flushall',
  'flushdb',
  'config|get',
  'config|set',
  'keys',
  'debug',
  'shutdown',
  'acl|list',
  'acl|setuser',
  'module|load',
  'script|flush',
  'script|kill',
  'script|debug',
  'function|flush',
  'monitor',
  'replicaof',
  'save',
  'bgsave',
  'client|kill',
  'client|list',
  'swapdb',
  'migrate',
  'restore',
  'randomkey',
  'dbsize',
] as const;

const BASE_COMMANDS = [
  '-@all',
  '+@read',
  '+@write',
  '+@transaction',
  '+@scripting',
  '+@connection',
  '-@dangerous',
  '-script|flush',
  '-script|kill',
  // SCRIPT DEBUG SYNC would stop the whole server while a script is stepped through.
  '-script|debug',
  '-function',
  '-fcall',
  '-fcall_ro',
  '-scan',
  '-randomkey',
  '-dbsize',
  '+info',
  // A Redis Cluster client learns which node serves which slot (CLUSTER SLOTS) and whether the cluster
  // is up (CLUSTER INFO, its ready check); READONLY and ASKING, which it also sends, are @connection.
  // Nothing that changes the cluster: CLUSTER's other subcommands are the admin's. On a server without
  // cluster mode both only answer an error.
  '+cluster|slots',
  '+cluster|info',
];

/** Commands beyond the base that one service needs on one role, with the reason. */
const EXTRA_COMMANDS: Partial<Record<Service, Partial<Record<RedisRole, string[]>>>> = {
  // removeRetiredJobs (@atoll/jobs) finds jobs of retired versions by id with SCAN MATCH over its own
  // queues' keys; SCAN returns only names, and the notifier may read every key it could find.
  notifier: { queue: ['+scan'] },
};

const KEY_RULE: Record<KeyAccess, string> = { read: '%R~', write: '%W~', readwrite: '~' };
// The sharded forms (SPUBLISH, SSUBSCRIBE) are what a client of a Redis Cluster uses (@atoll/redis
// pubsub.ts); the same channel patterns (&) apply to them.
const CHANNEL_COMMANDS: Record<ChannelAccess, string[]> = {
  publish: ['+publish', '+spublish'],
  subscribe: ['+subscribe', '+unsubscribe', '+ssubscribe', '+sunsubscribe'],
  'publish-subscribe': [
    '+publish',
    '+subscribe',
    '+unsubscribe',
    '+spublish',
    '+ssubscribe',
    '+sunsubscribe',
  ],
};

/** A spec pattern as an ACL glob: placeholders become `*` (braces are literal in Redis globs). */
function glob(prefix: string, pattern: string): string {
  return `${prefix}:${pattern.replace(/<[^>]*>/g, '*')}`;
}

export interface KeyPattern {
  /** A KEY_SPECS name, or `queue:<name>` for a BullMQ queue. */
  key: string;
  instance: RedisRole;
  kind: 'key' | 'channel';
  glob: string;
  users: Partial<Record<Service, KeyAccess | ChannelAccess>>;
}

/** Every key and channel pattern under `prefix`, with the services that may use it and how. */
export function keyPatterns(prefix: string): KeyPattern[] {
  const patterns: KeyPattern[] = [];
  for (const [key, spec] of Object.entries(KEY_SPECS)) {
    if (key === 'bullPrefix') continue;
    patterns.push({
      key,
      instance: spec.instance,
      kind: spec.type === 'Channel' ? 'channel' : 'key',
      glob: glob(prefix, spec.pattern),
      users: spec.users,
    });
  }
  for (const [queue, users] of Object.entries(QUEUE_USERS)) {
    patterns.push({
      key: `queue:${queue}`,
      instance: KEY_SPECS.bullPrefix.instance,
      kind: 'key',
      // BullMQ's keys are `<bullPrefix>:<queue>:<suffix>`, the base key `<bullPrefix>:<queue>:` included.
      glob: `${glob(prefix, KEY_SPECS.bullPrefix.pattern)}:${queue}:*`,
      users: Object.fromEntries(users.map((s) => [s, 'readwrite'])),
    });
  }
  return patterns;
}

/**
 * The ACL rules (after the password) of `service` on `instance`, or null when it uses nothing there
 * (and so gets no user on that server).
 */
export function aclRules(service: Service, instance: RedisRole, prefix: string): string[] | null {
  const mine = keyPatterns(prefix).filter((p) => p.instance === instance && p.users[service]);
  if (mine.length === 0) return null;
  const keys = mine
    .filter((p) => p.kind === 'key')
    .map((p) => `${KEY_RULE[p.users[service] as KeyAccess]}${p.glob}`);
  const channels = mine.filter((p) => p.kind === 'channel');
  const channelCommands = new Set(
    channels.flatMap((p) => CHANNEL_COMMANDS[p.users[service] as ChannelAccess]),
  );
  return [
    'resetkeys',
    'resetchannels',
    ...keys,
    ...channels.map((p) => `&${p.glob}`),
    ...BASE_COMMANDS,
    ...channelCommands,
    ...(EXTRA_COMMANDS[service]?.[instance] ?? []),
  ];
}

/** The services that have a user on `instance`. */
export function servicesOn(instance: RedisRole, prefix = 'atoll'): Service[] {
  return SERVICES.filter((s) => aclRules(s, instance, prefix) !== null);
}

/**
 * The key-space audit's user (`pnpm redis:audit`, @atoll/redis audit.ts), the same on every role: SCAN
 * (names only, MATCH `<prefix>:*`), TYPE, PTTL, MEMORY USAGE, the length of a set, sorted set, list,
 * hash or stream (ZCARD, SCARD, LLEN, HLEN, XLEN), and INFO, with read access to the prefix's keys
 * (which those need) but none of the commands that read a value (GET, HGETALL…), write, run scripts or
 * administer the server. An operator can run it without the admin
 * password, and a leaked audit password shows key names and sizes, never a session.
 */
export function auditRules(prefix: string): string[] {
  return [
    'resetkeys',
    'resetchannels',
    `%R~${prefix}:*`,
    '-@all',
    '+@connection',
    '-@dangerous',
    '+info',
    // On a Redis Cluster: where the nodes are, to scan each primary.
    '+cluster|slots',
    '+cluster|info',
    '+scan',
    '+type',
    '+pttl',
    '+memory|usage',
    '+zcard',
    '+scard',
    '+llen',
    '+hlen',
    '+xlen',
  ];
}

/**
 * Every user's password on one role's servers: `admin` is the `default` user's; `replica` and
 * `sentinel`, when given, add the users of a Sentinel group (REPLICATION_USER, SENTINEL_USER); `audit`
 * the key-space audit's (auditRules).
 */
export type AclUsers = { admin: string; audit?: string; replica?: string; sentinel?: string } & Partial<
  Record<Service, string>
>;

/**
 * The user a replica authenticates to its primary with (`masteruser` / `masterauth`): only the
 * replication handshake and stream. Every node of a group has it, since any may become the primary.
 */
export const REPLICATION_USER = { name: 'replica', rules: ['-@all', '+psync', '+replconf', '+ping'] };

/**
 * The user the sentinels monitor and reconfigure the data nodes with (`sentinel auth-user`), as the
 * Redis documentation ("Sentinel ACL") lists its commands; on the sentinels the same name is their
 * peers' user (`sentinel sentinel-user`), allowed everything a sentinel may ask another.
 */
export const SENTINEL_USER = {
  name: 'sentinel',
  rules: [
    'allchannels',
    '-@all',
    '+multi',
    '+exec',
    '+slaveof',
    '+replicaof',
    '+ping',
    '+subscribe',
    '+publish',
    '+config|rewrite',
    '+role',
    '+info',
    '+client|setname',
    '+client|kill',
    '+script|kill',
  ],
  peerRules: ['allchannels', '+@all'],
};

/**
 * What a service may ask a sentinel: where the primary is (ioredis on every connect), the other
 * sentinels (ioredis keeps its list current) and the replicas (the role check of @atoll/redis).
 * Nothing that changes the group (SENTINEL SET, FAILOVER, RESET, MONITOR…), no keys.
 */
export const SENTINEL_CLIENT_RULES = [
  'resetkeys',
  'resetchannels',
  '-@all',
  '+auth',
  '+hello',
  '+ping',
  '+client|setname',
  '+sentinel|get-master-addr-by-name',
  '+sentinel|sentinels',
  '+sentinel|replicas',
  '+sentinel|slaves',
];

const sha256 = (password: string) => createHash('sha256').update(password).digest('hex');

/**
 * The ACL file of one Redis role (`aclfile` in its conf): the admin as `default`, then each service that
 * uses the role and has a password in `passwords`, then `audit` if it has one. Only SHA-256 hashes of the
 * passwords are written.
 */
export function aclFile(instance: RedisRole, prefix: string, passwords: AclUsers): string {
  if (passwords.admin.length < 32) throw new TypeError('the admin password must be at least 32 characters');
  const lines = [`user default on #${sha256(passwords.admin)} ~* &* +@all`];
  for (const service of SERVICES) {
    const rules = aclRules(service, instance, prefix);
    const password = passwords[service];
    if (!rules || !password) continue;
    if (password.length < 32) throw new TypeError(`the ${service} password must be at least 32 characters`);
    lines.push(`user ${service} on #${sha256(password)} ${rules.join(' ')}`);
  }
  if (passwords.audit) {
    if (passwords.audit.length < 32) throw new TypeError('the audit password must be at least 32 characters');
    lines.push(`user audit on #${sha256(passwords.audit)} ${auditRules(prefix).join(' ')}`);
  }
  if (passwords.replica)
    lines.push(userLine(REPLICATION_USER.name, passwords.replica, REPLICATION_USER.rules));
  if (passwords.sentinel) lines.push(userLine(SENTINEL_USER.name, passwords.sentinel, SENTINEL_USER.rules));
  return `${lines.join('\n')}\n`;
}

function userLine(name: string, password: string, rules: string[]): string {
  if (password.length < 32) throw new TypeError(`the ${name} password must be at least 32 characters`);
  return `user ${name} on #${sha256(password)} ${rules.join(' ')}`;
}

/**
 * The ACL users of the sentinels of one role's group (`user` lines of sentinel.conf): the admin as
 * `default`, the peer sentinels' user, and each service that uses the role with the same password as
 * on the data nodes (so one URL carries both), allowed only SENTINEL_CLIENT_RULES; `audit` too when it has a
 * password.
 */
export function sentinelAclLines(instance: RedisRole, prefix: string, passwords: AclUsers): string[] {
  if (passwords.admin.length < 32) throw new TypeError('the admin password must be at least 32 characters');
  if (!passwords.sentinel) throw new TypeError('a Sentinel group needs the sentinel user password');
  const lines = [
    `user default on #${sha256(passwords.admin)} ~* &* +@all`,
    userLine(SENTINEL_USER.name, passwords.sentinel, SENTINEL_USER.peerRules),
  ];
  for (const service of SERVICES) {
    const password = passwords[service];
    if (!password || aclRules(service, instance, prefix) === null) continue;
    lines.push(userLine(service, password, SENTINEL_CLIENT_RULES));
  }
  // The key-space audit finds the nodes as a service does (`pnpm redis:audit` with a Sentinel URL).
  if (passwords.audit) lines.push(userLine('audit', passwords.audit, SENTINEL_CLIENT_RULES));
  return lines;
}

/**
 * The users of sentinels that monitor the groups of several roles (one sentinel process may watch
 * redis-session and redis-queue): each role's sentinelAclLines, every user once. A service has one
 * password on every role, so its line is the same in each; it may then ask where any of the groups is,
 * which tells it addresses only.
 */
export function sentinelAclFile(instances: RedisRole[], prefix: string, passwords: AclUsers): string {
  const lines = new Set(instances.flatMap((instance) => sentinelAclLines(instance, prefix, passwords)));
  return `${[...lines].join('\n')}\n`;
}
