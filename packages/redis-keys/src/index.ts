/**
 * The key map of atoll: the only place a Redis key string is built.
 *
 * Every key lives on exactly one of the three Redis roles (see deploy/redis/*.conf):
 *
 * | key                                   | instance | type   | TTL                                            |
 * |---------------------------------------|----------|--------|------------------------------------------------|
 * | `{p}:sess:{<tokenHash>}`              | session  | Hash   | idle timeout (sliding), never past absolute    |
 * | `{p}:user-sess:{<userId>}`            | session  | Set    | the absolute session timeout, renewed on login |
 * | `{p}:role-holders:{<role>}`           | session  | Set    | the absolute session timeout, renewed on add   |
 * | `{p}:login-fail:{<kind>:<id>}`        | session  | String | the failure window (15 min by default)         |
 * | `{p}:verify:{<userId>}`               | session  | Hash   | 15 minutes (the code's life)                   |
 * | `{p}:pw-reset:{<tokenHash>}`          | session  | String | 30 minutes (the reset link's life)             |
 * | `{p}:mail-cap:{<kind>:<userId>}`      | session  | String | the cap's window (15 min)                      |
 * | `{p}:mail-secret:{<jobId>}`           | session  | String | the secret's life (15/30 min); deleted once sent |
 * | `{p}:pw-change:{<userId>}`            | session  | String | the change window (1 hour by default)          |
 * | `{p}:signup:{<address|prefix>}`       | session  | String | the sign-up window (1 hour by default)         |
 * | `{p}:devices:{<userId>}`              | session  | Sorted Set | the newest device cookie's life (180 days) |
 * | `{p}:oauth:{<stateHash>}`             | session  | String | 10 minutes; consumed with GETDEL               |
 * | `{p}:rl:{<tier>:<id>}`                | session  | String | the tier's window, set by the counting script  |
 * | `{p}:rank:{<name>}`                   | cache    | Sorted Set | 10 min ± jitter; rebuilt from PostgreSQL   |
 * | `{p}:rebuild:{<name>}`                | cache    | String | 5 s: one rebuild at a time across instances    |
 * | `{p}:rel:{<userId>}:fav`             | cache    | Set    | 1 hour ± jitter; rebuilt from PostgreSQL       |
 * | `{p}:rel:{<userId>}:fol`             | cache    | Set    | 1 hour ± jitter; rebuilt from PostgreSQL       |
 * | `{p}:rel:{<userId>}:act`             | cache    | List   | 1 hour ± jitter; rebuilt from PostgreSQL       |
 * | `{p}:rel:{<userId>}:ver`             | cache    | String | 1 hour; bumped by every change of the above    |
 * | `{p}:c:{<ns>:<id>}`                   | cache    | String | the entry's TTL + grace, with jitter           |
 * | `{p}:c-lease:{<ns>:<id>}`             | cache    | String | 2 s: one loader per key across instances       |
 * | `{p}:c-tag:{<tag>}`                   | cache    | Set    | the longest TTL + grace of its entries         |
 * | `{p}:c-bus`                           | cache    | Channel | none (pub/sub): L1 invalidations              |
 * | `{p}:events:{users}`                  | queue    | Stream | none; trimmed to about 100 000 entries         |
 * | `{p}:{bull}:<queue>:...`              | queue    | BullMQ | bounded by each job's removeOn* policy         |
 * | `{p}:notify-cap:{<kind>:<userId>}`    | queue    | String | the cap's window (1 hour by default)           |
 * | `{p}:lock:{<name>}`                   | queue    | String | the lease (PX), extended while the holder works |
 * | `{p}:lock-fence:{<name>}`             | queue    | String | none: a counter that must only ever grow       |
 * | `{p}:live-notifications`              | session  | Channel | none (pub/sub): live notifications to gateways |
 *
 * Rules, checked by the tests of this package:
 * - every key starts with the deployment prefix (`atoll` by default, random in tests), so several
 *   deployments or test runs can share a server without seeing each other;
 * - every key on the cache and session instances carries a TTL (`ttl` below is never `none` there);
 * - keys that one script or transaction touches together share a hash tag (`{...}`), so everything also
 *   runs on Redis Cluster. A hash tag is the first `{...}` in the key; the prefix never contains braces.
 */

export type RedisRole = 'cache' | 'session' | 'queue';

/** The services that connect to Redis, each as its own ACL user (see acl.ts). */
export const SERVICES = ['gateway', 'auth', 'content', 'notifier'] as const;
export type Service = (typeof SERVICES)[number];

/**
 * What a service may do with a key: read it, write it, or both (Redis's `%R~`, `%W~` and `~`). A
 * channel is published on, subscribed to, or both.
 */
export type KeyAccess = 'read' | 'write' | 'readwrite';
export type ChannelAccess = 'publish' | 'subscribe' | 'publish-subscribe';

export interface KeySpec {
  /** The key pattern, with `<placeholders>`, as it appears under the prefix. */
  readonly pattern: string;
  readonly instance: RedisRole;
  readonly type: 'String' | 'Hash' | 'Set' | 'Sorted Set' | 'List' | 'Stream' | 'Channel' | 'Key prefix';
  /** How long the key lives, in words; `none` only on the queue instance. */
  readonly ttl: string;
  /**
   * The services that use the key and how: the only ones whose Redis users may touch it (acl.ts turns
   * this into each service's ACL rules). Empty only for `bullPrefix`, whose users are per queue
   * (QUEUE_USERS).
   */
  readonly users: Partial<Record<Service, KeyAccess | ChannelAccess>>;
}

/** Metadata for every key: used by the docs, the TTL audit in the tests, and `describeKey`. */
export const KEY_SPECS = {
  session: {
    pattern: 'sess:{<tokenHash>}',
    instance: 'session',
    type: 'Hash',
    ttl: 'idle timeout, refreshed at most every refresh interval, never past the absolute timeout',
    users: { gateway: 'readwrite', auth: 'readwrite' },
  },
  userSessions: {
    pattern: 'user-sess:{<userId>}',
    instance: 'session',
    type: 'Set',
    ttl: 'absolute session timeout, renewed whenever a session is added',
    users: { auth: 'readwrite' },
  },
  roleHolders: {
    pattern: 'role-holders:{<role>}',
    instance: 'session',
    type: 'Set',
    ttl: 'absolute session timeout, renewed whenever a session with the role is added: once it runs out, every session it could name has ended',
    users: { auth: 'readwrite' },
  },
  loginFailures: {
    pattern: 'login-fail:{<account|account-address|address|device>:<id>}',
    instance: 'session',
    type: 'String',
    ttl: 'the failure window, set atomically with the first increment (count-failure.lua)',
    users: { auth: 'readwrite' },
  },
  verificationCode: {
    pattern: 'verify:{<userId>}',
    instance: 'session',
    type: 'Hash',
    ttl: "the code's life (15 min); attempts are counted in the same hash, which keeps its TTL",
    users: { auth: 'readwrite' },
  },
  passwordReset: {
    pattern: 'pw-reset:{<tokenHash>}',
    instance: 'session',
    type: 'String',
    ttl: "the reset link's life (30 min); consumed with GETDEL",
    users: { auth: 'readwrite' },
  },
  mailCap: {
    pattern: 'mail-cap:{<reset|code>:<userId>}',
    instance: 'session',
    type: 'String',
    ttl: "the cap's window (15 min), set atomically with the first increment (count-failure.lua)",
    users: { auth: 'readwrite' },
  },
  mailSecret: {
    pattern: 'mail-secret:{<jobId>}',
    instance: 'session',
    type: 'String',
    ttl: "the secret's life (code 15 min, reset link 30 min); written by auth before it enqueues the email, deleted by the notifier once the email is sent",
    users: { auth: 'write', notifier: 'readwrite' },
  },
  passwordChanges: {
    pattern: 'pw-change:{<userId>}',
    instance: 'session',
    type: 'String',
    ttl: 'the password-change window (PASSWORD_CHANGE_WINDOW_S, 1 hour), set atomically with the first increment (count-failure.lua)',
    users: { auth: 'readwrite' },
  },
  signups: {
    pattern: 'signup:{<address|prefix>}',
    instance: 'session',
    type: 'String',
    ttl: 'the sign-up window (REGISTRATION_WINDOW_S, 1 hour), set atomically with the first increment (count-failure.lua)',
    users: { auth: 'readwrite' },
  },
  devices: {
    pattern: 'devices:{<userId>}',
    instance: 'session',
    type: 'Sorted Set',
    ttl: "the device cookie's life (DEVICE_COOKIE_TTL_S, 180 days), renewed whenever one is issued, in the script that adds it; each member's score is its own expiry, and at most DEVICE_COOKIE_MAX_PER_ACCOUNT members are kept",
    users: { auth: 'readwrite' },
  },
  oauthState: {
    pattern: 'oauth:{<stateHash>}',
    instance: 'session',
    type: 'String',
    ttl: '10 minutes; consumed with GETDEL (single use)',
    users: { auth: 'readwrite' },
  },
  rateLimit: {
    pattern: 'rl:{<anonymous|user|address|auth|mail>:<address|userId>}',
    instance: 'session',
    type: 'String',
    ttl: "the tier's window, given by the same script that increments the counter (gateway count.lua)",
    users: { gateway: 'readwrite' },
  },
  ranking: {
    pattern: 'rank:{<trending|leaderboard>}',
    instance: 'cache',
    type: 'Sorted Set',
    ttl: '10 minutes with jitter; rebuilt from PostgreSQL when missing (evicted, expired, flushed)',
    users: { content: 'readwrite' },
  },
  rebuildLease: {
    pattern: 'rebuild:{<name>}',
    instance: 'cache',
    type: 'String',
    ttl: '5 seconds: whoever holds it rebuilds, the others wait or read PostgreSQL',
    users: { content: 'readwrite' },
  },
  favoritesOf: {
    pattern: 'rel:{<userId>}:fav',
    instance: 'cache',
    type: 'Set',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing (a "" member marks it complete)',
    users: { content: 'readwrite' },
  },
  followingOf: {
    pattern: 'rel:{<userId>}:fol',
    instance: 'cache',
    type: 'Set',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing (a "" member marks it complete)',
    users: { content: 'readwrite' },
  },
  activityOf: {
    pattern: 'rel:{<userId>}:act',
    instance: 'cache',
    type: 'List',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing; trimmed to the most recent N',
    users: { content: 'readwrite' },
  },
  relationsVersion: {
    pattern: 'rel:{<userId>}:ver',
    instance: 'cache',
    type: 'String',
    ttl: '1 hour, renewed on every change: a rebuild that raced a change is not stored',
    users: { content: 'readwrite' },
  },
  cacheEntry: {
    pattern: 'c:{<namespace>:<id>}',
    instance: 'cache',
    type: 'String',
    ttl: "the entry's TTL plus its grace period, with jitter",
    users: { content: 'readwrite' },
  },
  cacheLease: {
    pattern: 'c-lease:{<namespace>:<id>}',
    instance: 'cache',
    type: 'String',
    ttl: 'the load lease (2 s by default): one loader per key across instances',
    users: { content: 'readwrite' },
  },
  cacheTag: {
    pattern: 'c-tag:{<tag>}',
    instance: 'cache',
    type: 'Set',
    ttl: 'renewed to the longest TTL plus grace of the entries it lists',
    users: { content: 'readwrite' },
  },
  cacheBus: {
    pattern: 'c-bus',
    instance: 'cache',
    type: 'Channel',
    ttl: 'none: a pub/sub channel holds no data',
    users: { content: 'publish-subscribe' },
  },
  userEvents: {
    pattern: 'events:{users}',
    instance: 'queue',
    type: 'Stream',
    ttl: 'none: durable event log, trimmed to about 100 000 entries on every append (XADD MAXLEN ~)',
    users: { auth: 'write', content: 'readwrite', notifier: 'readwrite' },
  },
  bullPrefix: {
    pattern: '{bull}',
    instance: 'queue',
    type: 'Key prefix',
    ttl: "none here: BullMQ's keys under this prefix, bounded by each job's removeOnComplete/removeOnFail",
    // Per queue: QUEUE_USERS.
    users: {},
  },
  notifyMailCap: {
    pattern: 'notify-cap:{<recipient|actor>:<userId>}',
    instance: 'queue',
    type: 'String',
    ttl: "the cap's window (NOTIFY_MAIL_CAP_WINDOW_MS, 1 hour by default), set atomically with the first increment; the notifier's",
    users: { notifier: 'readwrite' },
  },
  lock: {
    pattern: 'lock:{<name>}',
    instance: 'queue',
    type: 'String',
    ttl: 'the lease (SET NX PX), extended while its holder works; on the queue instance so it is never evicted',
    users: { notifier: 'readwrite' },
  },
  lockFence: {
    pattern: 'lock-fence:{<name>}',
    instance: 'queue',
    type: 'String',
    ttl: 'none: the fencing counter (INCR on every acquire) must only ever grow; kept by AOF',
    users: { notifier: 'readwrite' },
  },
  liveNotifications: {
    pattern: 'live-notifications',
    instance: 'session',
    type: 'Channel',
    ttl: 'none: a pub/sub channel holds no data (missed events are replayed from PostgreSQL)',
    users: { gateway: 'subscribe', notifier: 'publish' },
  },
} as const satisfies Record<string, KeySpec>;

export type KeyName = keyof typeof KEY_SPECS;

/**
 * The BullMQ queues (`<bullPrefix>:<queue>:*`) and the services that use each: producers and workers
 * alike need to read and write the queue's keys (BullMQ's scripts do both). @atoll/jobs's catalog must
 * name the same queues (its tests check).
 */
export const QUEUE_USERS = {
  /** auth adds verification codes, resets and email-change notices; the notifier sends them. */
  'security-email': ['auth', 'notifier'],
  /** auth adds welcomes; the notifier adds notification and digest emails and sends them all. */
  email: ['auth', 'notifier'],
  /** content adds follow, favorite, comment and mention jobs; the notifier fans them out. */
  notifications: ['content', 'notifier'],
  /** content schedules and runs its ranking recomputes. */
  rankings: ['content'],
  /** The notifier schedules and runs the digests. */
  digests: ['notifier'],
} as const satisfies Record<string, readonly Service[]>;
export type QueueName = keyof typeof QUEUE_USERS;

const PREFIX_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/i;

/** Hash-tag content must not contain braces, or the tag would end early. */
function tagPart(value: string, what: string): string {
  if (value.length === 0 || /[{}]/.test(value)) {
    throw new TypeError(`${what} must be non-empty and contain no braces, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** Builds the key functions for one deployment prefix. */
export function createKeys(prefix = 'atoll') {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`Redis key prefix must match ${PREFIX_PATTERN}, got ${JSON.stringify(prefix)}`);
  }
  return {
    prefix,
    /** Session record, keyed by the SHA-256 of the session token (never the token itself). */
    session: (tokenHash: string) => `${prefix}:sess:{${tagPart(tokenHash, 'tokenHash')}}`,
    /** The set of a user's session token hashes, for "list my sessions" and "log out everywhere". */
    userSessions: (userId: string) => `${prefix}:user-sess:{${tagPart(userId, 'userId')}}`,
    /**
     * The user ids that hold (or held) a session with a privileged role (`admin`), so that a service can
     * recompute those sessions' roles when the rules change (auth at start-up). A superset: ids whose
     * sessions ended stay until the next reconcile drops them or the Set expires.
     */
    roleHolders: (role: string) => `${prefix}:role-holders:{${tagPart(role, 'role')}}`,
    /**
     * Failed sign-in attempts (passwords, codes, reset tokens) in the current window: per account (a
     * hash of the email or the user id: Redis holds no address book), per account and client address
     * (or IPv6 prefix) together, per client address or IPv6 prefix, or per device cookie (its hash).
     */
    loginFailures: (kind: 'account' | 'account-address' | 'address' | 'device', id: string) =>
      `${prefix}:login-fail:{${kind}:${tagPart(id, 'id')}}`,
    /** A user's pending email verification code: its hash and the attempts made. */
    verificationCode: (userId: string) => `${prefix}:verify:{${tagPart(userId, 'userId')}}`,
    /** A pending password reset, keyed by the hash of its single-use token; holds the user id. */
    passwordReset: (tokenHash: string) => `${prefix}:pw-reset:{${tagPart(tokenHash, 'tokenHash')}}`,
    /** How many reset or verification emails an account was sent in the current window (the cap). */
    mailCap: (kind: 'reset' | 'code', userId: string) =>
      `${prefix}:mail-cap:{${kind}:${tagPart(userId, 'userId')}}`,
    /** How many password changes an account made in the current window (each costs a password hash). */
    passwordChanges: (userId: string) => `${prefix}:pw-change:{${tagPart(userId, 'userId')}}`,
    /**
     * How many accounts were registered from one client address (IPv4 as it is, IPv6 per /64) or IPv6
     * prefix (/56, /48) in the current window (each costs a password hash).
     */
    signups: (address: string) => `${prefix}:signup:{${tagPart(address, 'address')}}`,
    /**
     * An account's live device cookies (browsers that signed in to it before): members
     * `<tokenHash>:<credentials>` (a fingerprint of the user id and password hash at issue), scored by
     * their expiry in ms.
     */
    devices: (userId: string) => `${prefix}:devices:{${tagPart(userId, 'userId')}}`,
    /**
     * The secret a security email carries (a verification code, a reset token), for the email job
     * `jobId`: auth writes it before it enqueues the job, the notifier reads it to write the email and
     * deletes it once the email is sent. The job itself carries no secret (redis-queue and the admin
     * dashboard never see one).
     */
    mailSecret: (jobId: string) => `${prefix}:mail-secret:{${tagPart(jobId, 'jobId')}}`,
    /**
     * Instant notification emails in the current window, per recipient or per actor (the user whose
     * action caused them): over the cap, the notifier folds the email into the digest.
     */
    notifyMailCap: (kind: 'recipient' | 'actor', userId: string) =>
      `${prefix}:notify-cap:{${kind}:${tagPart(userId, 'userId')}}`,
    /**
     * A pending OAuth sign-in, keyed by the hash of its `state`: the PKCE verifier, the nonce, the return
     * path and the hash of the browser binding, as JSON.
     */
    oauthState: (stateHash: string) => `${prefix}:oauth:{${tagPart(stateHash, 'stateHash')}}`,
    /**
     * A gateway rate-limit counter for one tier and one caller: a client address (IPv6 grouped by /64)
     * for `anonymous`, `address`, `auth` and `mail`, a user id for `user`.
     */
    rateLimit: (tier: 'anonymous' | 'user' | 'address' | 'auth' | 'mail', id: string) =>
      `${prefix}:rl:{${tier}:${tagPart(id, 'id')}}`,
    /** A ranking kept as a Sorted Set on the cache instance (trending articles, author leaderboard). */
    ranking: (name: 'trending' | 'leaderboard') => `${prefix}:rank:{${name}}`,
    /** The lease that lets one instance rebuild a missing ranking while the others wait. */
    rebuildLease: (name: string) => `${prefix}:rebuild:{${tagPart(name, 'name')}}`,
    /** The article ids a user has favorited (behind the `favorited` flag). */
    favoritesOf: (userId: string) => `${prefix}:rel:{${tagPart(userId, 'userId')}}:fav`,
    /** The user ids a user follows (behind the `following` flag). */
    followingOf: (userId: string) => `${prefix}:rel:{${tagPart(userId, 'userId')}}:fol`,
    /** A user's most recent activity (articles written, comments, favorites), newest first, as JSON. */
    activityOf: (userId: string) => `${prefix}:rel:{${tagPart(userId, 'userId')}}:act`,
    /** Counts the changes to a user's relation keys, so that a rebuild that raced one is dropped. */
    relationsVersion: (userId: string) => `${prefix}:rel:{${tagPart(userId, 'userId')}}:ver`,
    /** A cached value (JSON) of the three-layer cache. */
    cacheEntry: (namespace: string, id: string) =>
      `${prefix}:c:{${tagPart(`${namespace}:${id}`, 'cache id')}}`,
    /** Who is loading a cache entry right now (SET NX PX). */
    cacheLease: (namespace: string, id: string) =>
      `${prefix}:c-lease:{${tagPart(`${namespace}:${id}`, 'cache id')}}`,
    /** The entry keys that depend on a tag, for invalidation by dependency. */
    cacheTag: (tag: string) => `${prefix}:c-tag:{${tagPart(tag, 'tag')}}`,
    /** The pub/sub channel that tells every instance which L1 entries to drop. */
    cacheBus: () => `${prefix}:c-bus`,
    /** The Stream of user.* events (auth appends; content and notifier read with consumer groups). */
    userEvents: () => `${prefix}:events:{users}`,
    /**
     * The BullMQ `prefix` option. BullMQ builds `<prefix>:<queue>:<suffix>` itself; the hash tag puts every
     * queue in one slot, so BullMQ's multi-key scripts (and flows across queues) work on Redis Cluster.
     */
    bullPrefix: () => `${prefix}:{bull}`,
    /** A distributed lock's lease: holds the holder's random token (`@atoll/lock`). */
    lock: (name: string) => `${prefix}:lock:{${tagPart(name, 'lock name')}}`,
    /** The lock's fencing counter; same hash tag as the lease, as one script touches both. */
    lockFence: (name: string) => `${prefix}:lock-fence:{${tagPart(name, 'lock name')}}`,
    /** The pub/sub channel the notifier publishes live notifications on; every gateway subscribes. */
    liveNotifications: () => `${prefix}:live-notifications`,
  } as const;
}

export type Keys = ReturnType<typeof createKeys>;

/** The hash tag Redis Cluster hashes for a key: the content of the first non-empty `{...}`, or the key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}

export {
  type AclUsers,
  aclFile,
  aclRules,
  auditRules,
  DENIED_COMMANDS,
  type KeyPattern,
  keyPatterns,
  REPLICATION_USER,
  SENTINEL_CLIENT_RULES,
  SENTINEL_USER,
  sentinelAclFile,
  sentinelAclLines,
  servicesOn,
} from './acl.ts';
export { familyOf, type KeyFamily, keyFamilies, mustExpire } from './families.ts';
