/**
 * The key map of atoll: every Redis key, each defined once (`defineKey`). The builders, the ACL users,
 * the audit's key families and the key map table of the README all come from here.
 *
 * Rules, checked by the tests of this package:
 * - every key starts with the deployment prefix (`atoll` by default, random in tests), so several
 *   deployments or test runs can share a server without seeing each other;
 * - every key on the cache and session instances carries a TTL (`ttl` is never `none` there);
 * - keys that one script or transaction touches together share a hash tag (`{...}`), so everything also
 *   runs on Redis Cluster (`assertOneSlot`, and `defineScript` of @atoll/redis, check it on every call).
 *   A hash tag is the first `{...}` in the key; the prefix never contains braces.
 */
import { defineKey, type Service } from './define.ts';

export const KEY_DEFINITIONS = {
  session: defineKey({
    pattern: 'sess:{<tokenHash>}',
    holds: 'A session record, keyed by the SHA-256 of the session token (never the token itself).',
    instance: 'session',
    type: 'Hash',
    ttl: 'idle timeout, refreshed at most every refresh interval, never past the absolute timeout',
    ttlSetting: 'SESSION_IDLE_TIMEOUT_S',
    users: { gateway: 'readwrite', auth: 'readwrite' },
  }),
  userSessions: defineKey({
    pattern: 'user-sess:{<userId>}',
    holds: `A user's session token hashes, for "list my sessions" and "log out everywhere".`,
    instance: 'session',
    type: 'Set',
    ttl: 'absolute session timeout, renewed whenever a session is added',
    ttlSetting: 'SESSION_ABSOLUTE_TIMEOUT_S',
    users: { auth: 'readwrite' },
  }),
  roleHolders: defineKey({
    pattern: 'role-holders:{<role>}',
    holds:
      "The user ids that hold (or held) a session with a privileged role (`admin`), so that auth can recompute those sessions' roles when the rules change; a superset until the next reconcile.",
    instance: 'session',
    type: 'Set',
    ttl: 'absolute session timeout, renewed whenever a session with the role is added: once it runs out, every session it could name has ended',
    ttlSetting: 'SESSION_ABSOLUTE_TIMEOUT_S',
    users: { auth: 'readwrite' },
  }),
  loginFailures: defineKey({
    pattern: 'login-fail:{<account|account-address|address|device>:<id>}',
    holds:
      'Failed sign-in attempts in the current window: per account (a hash of the email, or the user id), per account and client address, per client address or IPv6 prefix, or per device cookie (its hash).',
    instance: 'session',
    type: 'String',
    ttl: 'the failure window, set atomically with the first increment (count-failure.lua)',
    ttlSetting: 'LOGIN_FAILURE_WINDOW_S',
    users: { auth: 'readwrite' },
  }),
  verificationCode: defineKey({
    pattern: 'verify:{<userId>}',
    holds: "A user's pending email verification code: its hash and the attempts made.",
    instance: 'session',
    type: 'Hash',
    ttl: "the code's life (15 min); attempts are counted in the same hash, which keeps its TTL",
    ttlMs: 15 * 60_000,
    users: { auth: 'readwrite' },
  }),
  passwordReset: defineKey({
    pattern: 'pw-reset:{<tokenHash>}',
    holds: 'A pending password reset, keyed by the hash of its single-use token; holds the user id.',
    instance: 'session',
    type: 'String',
    ttl: "the reset link's life (30 min); consumed with GETDEL",
    ttlMs: 30 * 60_000,
    users: { auth: 'readwrite' },
  }),
  mailCap: defineKey({
    pattern: 'mail-cap:{<reset|code>:<userId>}',
    holds: 'How many reset or verification emails an account was sent in the current window (the cap).',
    instance: 'session',
    type: 'String',
    ttl: "the cap's window (15 min), set atomically with the first increment (count-failure.lua)",
    ttlMs: 15 * 60_000,
    users: { auth: 'readwrite' },
  }),
  mailSecret: defineKey({
    pattern: 'mail-secret:{<jobId>}',
    holds:
      'The secret a security email carries (a code, a reset token), for its email job: auth writes it before it enqueues the job, the notifier reads it and deletes it once the email is sent; the job carries no secret.',
    instance: 'session',
    type: 'String',
    ttl: "the secret's life (code 15 min, reset link 30 min); written by auth before it enqueues the email, deleted by the notifier once the email is sent",
    users: { auth: 'write', notifier: 'readwrite' },
  }),
  passwordChanges: defineKey({
    pattern: 'pw-change:{<userId>}',
    holds: 'How many password changes an account made in the current window (each costs a password hash).',
    instance: 'session',
    type: 'String',
    ttl: 'the password-change window (1 hour by default), set atomically with the first increment (count-failure.lua)',
    ttlSetting: 'PASSWORD_CHANGE_WINDOW_S',
    users: { auth: 'readwrite' },
  }),
  signups: defineKey({
    pattern: 'signup:{<address>}',
    holds:
      'How many accounts were registered from one client address (IPv4 as it is, IPv6 per /64) or IPv6 prefix (/56, /48) in the current window.',
    instance: 'session',
    type: 'String',
    ttl: 'the sign-up window (1 hour by default), set atomically with the first increment (count-failure.lua)',
    ttlSetting: 'REGISTRATION_WINDOW_S',
    users: { auth: 'readwrite' },
  }),
  devices: defineKey({
    pattern: 'devices:{<userId>}',
    holds:
      "An account's live device cookies: members `<tokenHash>:<credentials>` (a fingerprint of the user id and password hash at issue), scored by their expiry in ms.",
    instance: 'session',
    type: 'Sorted Set',
    ttl: "the device cookie's life (180 days by default), renewed whenever one is issued, in the script that adds it; each member's score is its own expiry, and at most DEVICE_COOKIE_MAX_PER_ACCOUNT members are kept",
    ttlSetting: 'DEVICE_COOKIE_TTL_S',
    users: { auth: 'readwrite' },
  }),
  oauthState: defineKey({
    pattern: 'oauth:{<stateHash>}',
    holds:
      'A pending OAuth sign-in, keyed by the hash of its `state`: the PKCE verifier, the nonce, the return path and the hash of the browser binding, as JSON.',
    instance: 'session',
    type: 'String',
    ttl: '10 minutes; consumed with GETDEL (single use)',
    ttlMs: 10 * 60_000,
    users: { auth: 'readwrite' },
  }),
  rateLimit: defineKey({
    pattern: 'rl:{<anonymous|user|address|auth|mail>:<id>}',
    holds:
      'A gateway rate-limit counter for one tier and one caller: a client address (IPv6 grouped by /64), or a user id for `user`.',
    instance: 'session',
    type: 'String',
    ttl: "the tier's window, given by the same script that increments the counter (gateway count.lua)",
    users: { gateway: 'readwrite' },
  }),
  ranking: defineKey({
    pattern: 'rank:{<trending|leaderboard>}',
    holds: 'A ranking (trending articles, author leaderboard), rebuilt from PostgreSQL when missing.',
    instance: 'cache',
    type: 'Sorted Set',
    ttl: '10 minutes with jitter; rebuilt from PostgreSQL when missing (evicted, expired, flushed)',
    ttlMs: 10 * 60_000,
    users: { content: 'readwrite' },
  }),
  rebuildLease: defineKey({
    pattern: 'rebuild:{<name>}',
    holds:
      'The lease (`@atoll/lock` `tryLease`) that lets one instance rebuild a missing ranking while the others wait.',
    instance: 'cache',
    type: 'String',
    ttl: '5 seconds: whoever holds it rebuilds, the others wait or read PostgreSQL',
    ttlMs: 5000,
    users: { content: 'readwrite' },
  }),
  favoritesOf: defineKey({
    pattern: 'rel:{<userId>}:fav',
    holds: 'The article ids a user has favorited (behind the `favorited` flag).',
    instance: 'cache',
    type: 'Set',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing (a "" member marks it complete)',
    ttlMs: 3_600_000,
    users: { content: 'readwrite' },
  }),
  followingOf: defineKey({
    pattern: 'rel:{<userId>}:fol',
    holds: 'The user ids a user follows (behind the `following` flag).',
    instance: 'cache',
    type: 'Set',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing (a "" member marks it complete)',
    ttlMs: 3_600_000,
    users: { content: 'readwrite' },
  }),
  activityOf: defineKey({
    pattern: 'rel:{<userId>}:act',
    holds: "A user's most recent activity (articles written, comments, favorites), newest first, as JSON.",
    instance: 'cache',
    type: 'List',
    ttl: '1 hour with jitter; rebuilt from PostgreSQL when missing; trimmed to the most recent N',
    ttlMs: 3_600_000,
    users: { content: 'readwrite' },
  }),
  relationsVersion: defineKey({
    pattern: 'rel:{<userId>}:ver',
    holds: "Counts the changes to a user's relation keys, so that a rebuild that raced one is dropped.",
    instance: 'cache',
    type: 'String',
    ttl: '1 hour, renewed on every change: a rebuild that raced a change is not stored',
    users: { content: 'readwrite' },
  }),
  cacheEntry: defineKey({
    pattern: 'c:{<namespace>:<id>}',
    holds: 'A cached value (JSON) of the three-layer cache; its ids are cacheIds (cache-ids.ts).',
    instance: 'cache',
    type: 'String',
    ttl: "the entry's TTL plus its grace period, with jitter",
    ttlSetting: 'CACHE_TTL_S',
    users: { content: 'readwrite' },
  }),
  cacheLease: defineKey({
    pattern: 'c-lease:{<namespace>:<id>}',
    holds: 'Who is loading a cache entry right now (`@atoll/lock` `tryLease`).',
    instance: 'cache',
    type: 'String',
    ttl: 'the load lease (2 s by default): one loader per key across instances',
    ttlMs: 2000,
    users: { content: 'readwrite' },
  }),
  cacheTag: defineKey({
    pattern: 'c-tag:{<tag>}',
    holds: 'The ids of the cache entries that depend on a tag, for invalidation by dependency.',
    instance: 'cache',
    type: 'Set',
    ttl: 'renewed to the longest TTL plus grace of the entries it lists',
    users: { content: 'readwrite' },
  }),
  cacheBus: defineKey({
    pattern: 'c-bus',
    holds: 'The pub/sub channel that tells every instance which L1 entries to drop.',
    instance: 'cache',
    type: 'Channel',
    ttl: 'none: a pub/sub channel holds no data',
    users: { content: 'publish-subscribe' },
  }),
  userEvents: defineKey({
    pattern: 'events:{users}',
    holds: 'The Stream of user.* events (auth appends; content and notifier read with consumer groups).',
    instance: 'queue',
    type: 'Stream',
    ttl: 'none: durable event log, trimmed to about 100 000 entries on every append (XADD MAXLEN ~)',
    users: { auth: 'write', content: 'readwrite', notifier: 'readwrite' },
  }),
  bullPrefix: defineKey({
    pattern: '{bull}',
    holds:
      "BullMQ's `prefix` option: BullMQ builds `<prefix>:<queue>:<suffix>` itself; the hash tag puts every queue in one slot, so its multi-key scripts (and flows across queues) work on Redis Cluster.",
    instance: 'queue',
    type: 'Key prefix',
    ttl: "none here: BullMQ's keys under this prefix, bounded by each job's removeOnComplete/removeOnFail",
    // Per queue: QUEUE_USERS.
    users: {},
  }),
  notifyMailCap: defineKey({
    pattern: 'notify-cap:{<recipient|actor>:<userId>}',
    holds:
      'Instant notification emails in the current window, per recipient or per actor: over the cap, the notifier folds the email into the digest.',
    instance: 'queue',
    type: 'String',
    ttl: "the cap's window (1 hour by default), set atomically with the first increment; the notifier's",
    ttlSetting: 'NOTIFY_MAIL_CAP_WINDOW_MS',
    users: { notifier: 'readwrite' },
  }),
  lock: defineKey({
    pattern: 'lock:{<name>}',
    holds: "A distributed lock's lease: holds the holder's random token (`@atoll/lock`).",
    instance: 'queue',
    type: 'String',
    ttl: 'the lease (SET NX PX), extended while its holder works; on the queue instance so it is never evicted',
    users: { notifier: 'readwrite' },
  }),
  lockFence: defineKey({
    pattern: 'lock-fence:{<name>}',
    holds: "The lock's fencing counter; same hash tag as the lease, as one script touches both.",
    instance: 'queue',
    type: 'String',
    ttl: 'none: the fencing counter (INCR on every acquire) must only ever grow; kept by AOF',
    users: { notifier: 'readwrite' },
  }),
  liveNotifications: defineKey({
    pattern: 'live-notifications',
    holds: 'The pub/sub channel the notifier publishes live notifications on; every gateway subscribes.',
    instance: 'session',
    type: 'Channel',
    ttl: 'none: a pub/sub channel holds no data (missed events are replayed from PostgreSQL)',
    users: { gateway: 'subscribe', notifier: 'publish' },
  }),
} as const;

export type KeyName = keyof typeof KEY_DEFINITIONS;

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
