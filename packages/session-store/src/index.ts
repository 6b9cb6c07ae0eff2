/**
 * Revocable sessions in redis-session (design.md, "Identity").
 *
 * A session token is 32 random bytes (base64url), shown to the client once. Redis never sees it: the
 * record is a Hash under `sess:{<id>}`, where the id is the first 128 bits of SHA-256(token) and the
 * record keeps the full hash as a verifier, compared in constant time. A Redis dump therefore holds no
 * usable token. The id doubles as the public session id ("list my sessions", "revoke that one").
 *
 * Timeouts: the key's TTL is the idle timeout, slid forward on use but at most once per refresh interval
 * (no write per request), and never past the absolute expiry stored in the record.
 * A per-user Set indexes the ids for listing and "log out everywhere".
 *
 * Limits (`SessionLimits`): at most `maxPerUser` live sessions per user, a new one ends the oldest; and
 * for each of the `trackedRoles` a Set of the user ids that hold a session with it, so that the owner of
 * the role rules can recompute those sessions' roles when the rules change (`roleHolders`).
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { defineScript, oneSlotMulti, type RedisClient, waitForReplicas } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';

export interface SessionData {
  userId: string;
  username: string;
  roles: string[];
  userAgent?: string | undefined;
  ip?: string | undefined;
}

export interface Session extends SessionData {
  id: string;
  createdAt: number;
  lastSeenAt: number;
  /** Absolute expiry, epoch ms. */
  expiresAt: number;
}

/** A token's record address: its public id, its key, and the verifier the record must hold. */
export interface LocatedSession {
  id: string;
  key: string;
  verifier: string;
}

export interface SessionTimeouts {
  idleMs: number;
  absoluteMs: number;
  /** Minimum time between two idle refreshes of the same session. */
  refreshMs: number;
}

export interface SessionLimits {
  /** Live sessions per user; creating one more ends the oldest. Unset: no cap. */
  maxPerUser?: number;
  /** Roles whose holders are indexed (`roleHolders`), e.g. `admin`. */
  trackedRoles?: readonly string[];
}

export const DEFAULT_TIMEOUTS: SessionTimeouts = {
  idleMs: 7 * 24 * 3600_000,
  absoluteMs: 30 * 24 * 3600_000,
  refreshMs: 5 * 60_000,
};

export function hashToken(token: string): { id: string; verifier: string } {
  const digest = hash('sha256', token, 'hex');
  return { id: digest.slice(0, 32), verifier: digest };
}

/**
 * update-if-owned.lua — sets a session's username and roles only if the record still exists and belongs
 * to the user; checked and written atomically, since HSET on an expired key would create one without a
 * TTL. KEYS[1] the session record; ARGV[1] the user id; ARGV[2] the username; ARGV[3] the roles
 * (comma-separated). Returns 1 if updated.
 */
const UPDATE_IF_OWNED = defineScript<[userId: string, username: string, roles: string], number>({
  name: 'sessionUpdateIfOwned',
  keys: ['session'],
  lua: `
if redis.call('HGET', KEYS[1], 'userId') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'username', ARGV[2], 'roles', ARGV[3])
  return 1
end
return 0
`,
});

/** A well-formed token: 43 base64url characters. Anything else is rejected without touching Redis. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export class SessionStore {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly timeouts: SessionTimeouts;
  private readonly now: () => number;
  private readonly limits: SessionLimits;

  constructor(
    redis: RedisClient,
    keys: Keys,
    timeouts: SessionTimeouts = DEFAULT_TIMEOUTS,
    now: () => number = Date.now,
    limits: SessionLimits = {},
  ) {
    this.redis = redis;
    this.keys = keys;
    this.timeouts = timeouts;
    this.now = now;
    this.limits = limits;
  }

  /** Creates a session and returns the token to hand to the client (the only time it exists). */
  async create(data: SessionData): Promise<{ token: string; session: Session }> {
    const token = randomBytes(32).toString('base64url');
    const { id, verifier } = hashToken(token);
    const now = this.now();
    const session: Session = {
      ...data,
      id,
      createdAt: now,
      lastSeenAt: now,
      expiresAt: now + this.timeouts.absoluteMs,
    };
    const key = this.keys.session(id);
    const index = this.keys.userSessions(data.userId);
    // The index is written first: a crash in between leaves an index entry without a record, which
    // `list` prunes, never a session that "log out everywhere" cannot find.
    const indexed = await this.index(data.userId, id);
    await this.trackRoles(data.userId, data.roles);
    await oneSlotMulti(this.redis, 'session record', [key])
      .hset(key, toHash(session, verifier))
      .pexpire(key, Math.min(this.timeouts.idleMs, this.timeouts.absoluteMs))
      .exec();
    // `list` prunes index entries it finds without a record, and this one had none a moment ago: if it
    // was pruned meanwhile, it goes back, so no live session is missing from the index that "log out
    // everywhere" and every credential change read (the other half is in `list`).
    if (!(await this.redis.sismember(index, id))) await this.index(data.userId, id);
    // On a Sentinel group a sign-in is answered only once a replica has its session: a failover right
    // after cannot sign the user out again (a no-op on a single server; rejects as unavailable: 503).
    await waitForReplicas(this.redis);
    const count = Number(indexed?.[2]?.[1] ?? 0);
    const max = this.limits.maxPerUser;
    // Only listed when the index is over the cap (it may hold a few expired ids, which `list` prunes).
    if (max !== undefined && count > max) {
      const others = (await this.list(data.userId)).filter((s) => s.id !== id);
      await Promise.all(others.slice(max - 1).map((s) => this.destroyById(data.userId, s.id)));
    }
    return { token, session };
  }

  /** Adds a session to its user's index, which lives as long as the newest session; with the count. */
  private index(userId: string, id: string) {
    const index = this.keys.userSessions(userId);
    return oneSlotMulti(this.redis, 'session index', [index])
      .sadd(index, id)
      .pexpire(index, this.timeouts.absoluteMs)
      .scard(index)
      .exec();
  }

  /** Indexes the user under each tracked role it holds; the Set lives as long as the newest session. */
  private async trackRoles(userId: string, roles: readonly string[]): Promise<void> {
    const tracked = roles.filter((role) => this.limits.trackedRoles?.includes(role));
    if (tracked.length === 0) return;
    // One transaction per role: each Set has a hash tag of its own, and only its SADD and PEXPIRE must
    // go together.
    await Promise.all(
      tracked.map((role) => {
        const set = this.keys.roleHolders(role);
        return oneSlotMulti(this.redis, 'role holders', [set])
          .sadd(set, userId)
          .pexpire(set, this.timeouts.absoluteMs)
          .exec();
      }),
    );
  }

  /** The user ids indexed as holding a session with a tracked role (a superset: see `forgetRoleHolder`). */
  roleHolders(role: string): Promise<string[]> {
    return this.redis.smembers(this.keys.roleHolders(role));
  }

  /** Drops a user from a role's index, once none of its sessions has the role any more. */
  async forgetRoleHolder(role: string, userId: string): Promise<void> {
    await this.redis.srem(this.keys.roleHolders(role), userId);
  }

  /** One of a user's sessions by its public id (no token needed), or null if it ended. */
  async find(userId: string, id: string): Promise<Session | null> {
    const session = fromHash(id, await this.redis.hgetall(this.keys.session(id)));
    return session && session.userId === userId ? session : null;
  }

  /**
   * Resolves a token to its session, or null. One round trip (HGETALL) unless the idle refresh is due,
   * which adds one write. Expired or malformed tokens resolve to null.
   */
  async resolve(token: string): Promise<Session | null> {
    const located = this.locate(token);
    if (!located) return null;
    return this.accept(located, await this.redis.hgetall(located.key));
  }

  /**
   * Where a token's record lives, without reading it: for callers that fetch the record together with
   * other work in one round trip (the gateway reads it in the same script that counts the rate limit)
   * and then hand it to `accept`. Null for a malformed token, which must not touch Redis.
   */
  locate(token: string): LocatedSession | null {
    if (!TOKEN_PATTERN.test(token)) return null;
    const { id, verifier } = hashToken(token);
    return { id, verifier, key: this.keys.session(id) };
  }

  /**
   * Checks a record read for a located token (verifier in constant time, absolute expiry) and slides the
   * idle timeout when the refresh is due (the only write, at most once per refresh interval).
   */
  async accept(located: LocatedSession, hash: Record<string, string>): Promise<Session | null> {
    const { id, key, verifier } = located;
    const session = fromHash(id, hash, verifier);
    if (!session) return null;
    const now = this.now();
    if (now >= session.expiresAt) {
      await this.destroyById(session.userId, id);
      return null;
    }
    if (now - session.lastSeenAt >= this.timeouts.refreshMs) {
      session.lastSeenAt = now;
      const ttl = Math.min(this.timeouts.idleMs, session.expiresAt - now);
      await oneSlotMulti(this.redis, 'session refresh', [key])
        .hset(key, 'lastSeenAt', String(now))
        .pexpire(key, ttl)
        .exec();
    }
    return session;
  }

  /** Ends the session of a token (log out). */
  async destroy(token: string): Promise<void> {
    if (!TOKEN_PATTERN.test(token)) return;
    const { id } = hashToken(token);
    const userId = await this.redis.hget(this.keys.session(id), 'userId');
    if (userId) await this.destroyById(userId, id);
  }

  /** Ends one of a user's sessions by its public id (revoke). Returns whether it existed. */
  async destroyById(userId: string, id: string): Promise<boolean> {
    const [deleted] = await Promise.all([
      this.redis.del(this.keys.session(id)),
      this.redis.srem(this.keys.userSessions(userId), id),
    ]);
    return deleted === 1;
  }

  /**
   * A user's live sessions, newest first; index entries whose record expired are pruned, except one whose
   * record appears meanwhile (a session being created).
   */
  async list(userId: string): Promise<Session[]> {
    const index = this.keys.userSessions(userId);
    const ids = await this.redis.smembers(index);
    if (ids.length === 0) return [];
    // Sent in the same tick (one write per node); not one pipeline: on a cluster the records are in
    // slots of their own, which one ioredis pipeline may not span.
    const hashes = await Promise.all(ids.map((id) => this.redis.hgetall(this.keys.session(id))));
    const sessions: Session[] = [];
    const stale: string[] = [];
    ids.forEach((id, i) => {
      const hash = hashes[i];
      const session = hash ? fromHash(id, hash) : null;
      if (session && session.userId === userId) sessions.push(session);
      else stale.push(id);
    });
    if (stale.length > 0) {
      await this.redis.srem(index, ...stale);
      // A session being created is indexed before its record is written: one whose record exists now
      // was not stale, and goes back (`create` checks the other order).
      const owners = await Promise.all(stale.map((id) => this.redis.hget(this.keys.session(id), 'userId')));
      const back = stale.filter((_, i) => owners[i] === userId);
      await Promise.all(back.map((id) => this.index(userId, id)));
    }
    return sessions.sort((a, b) => b.createdAt - a.createdAt);
  }

  /**
   * Puts a user's name and roles into every live session, so the identity the gateway asserts stays
   * true from the next request on.
   */
  async updateIdentity(userId: string, identity: { username: string; roles: string[] }): Promise<void> {
    await this.trackRoles(userId, identity.roles);
    const ids = await this.redis.smembers(this.keys.userSessions(userId));
    await Promise.all(
      ids.map((id) =>
        UPDATE_IF_OWNED.run(
          this.redis,
          [this.keys.session(id)],
          userId,
          identity.username,
          identity.roles.join(','),
        ),
      ),
    );
  }

  /** Log out everywhere (optionally keeping one session, e.g. the one changing the password). */
  async destroyAll(userId: string, exceptId?: string): Promise<number> {
    const ids = (await this.redis.smembers(this.keys.userSessions(userId))).filter((id) => id !== exceptId);
    let count = 0;
    for (const id of ids) if (await this.destroyById(userId, id)) count += 1;
    return count;
  }
}

function toHash(s: Session, verifier: string): Record<string, string> {
  const hash: Record<string, string> = {
    v: verifier,
    userId: s.userId,
    username: s.username,
    roles: s.roles.join(','),
    createdAt: String(s.createdAt),
    lastSeenAt: String(s.lastSeenAt),
    expiresAt: String(s.expiresAt),
  };
  if (s.userAgent) hash.userAgent = s.userAgent.slice(0, 256);
  if (s.ip) hash.ip = s.ip;
  return hash;
}

function fromHash(id: string, h: Record<string, string>, verifier?: string): Session | null {
  if (!h.v || !h.userId || !h.username || !h.expiresAt) return null;
  if (verifier !== undefined) {
    const a = Buffer.from(h.v);
    const b = Buffer.from(verifier);
    if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
  }
  return {
    id,
    userId: h.userId,
    username: h.username,
    roles: h.roles ? h.roles.split(',') : [],
    createdAt: Number(h.createdAt),
    lastSeenAt: Number(h.lastSeenAt),
    expiresAt: Number(h.expiresAt),
    userAgent: h.userAgent,
    ip: h.ip,
  };
}

/**
 * The session token a request carries: `Authorization: Token <token>` (RealWorld API clients; `Bearer`
 * is accepted too) or, without that header, the session cookie (browsers).
 */
export function tokenFromHeaders(
  headers: { authorization?: string | undefined; cookie?: string | undefined },
  cookieName: string,
): string | null {
  if (headers.authorization) {
    const match = /^(?:Token|Bearer) +(\S+)$/i.exec(headers.authorization);
    return match?.[1] ?? null;
  }
  if (!headers.cookie) return null;
  for (const part of headers.cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === cookieName) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null;
      }
    }
  }
  return null;
}
