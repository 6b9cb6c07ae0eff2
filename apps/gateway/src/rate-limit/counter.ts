/**
 * Counting requests for the rate limits, on redis-session, with atomic scripts (see count.lua.ts): every
 * tier a request counts in is counted in one round trip, and for an authenticated request that is the
 * session lookup's round trip (`readSessionAndCount`, used by the session plugin), else one
 * `countAll` made by the rate-limit hook. On a Redis Cluster, where a script may touch only keys of one
 * slot, each counter is its own script and the session is read before its user is counted: one round
 * trip more for an authenticated request (`readSessionThenCount`).
 *
 * The rate-limit hook (plugin.ts) counts only what the session lookup did not count already
 * (`request.precount`), so nothing is counted twice.
 *
 * When redis-session cannot count (down, or slower than the command timeout), the default is to fail
 * open: the request is counted in memory instead (memory-store.ts), the outage is logged once when it
 * starts and once when Redis is back, and every fallback is counted on /metrics. With `closed`, the
 * request is refused with 503 instead.
 */
import { defineScript, isCluster, type RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { AppError, Counter, type Registry } from '@atoll/service-kit';
import type { LocatedSession } from '@atoll/session-store';
import type { FastifyBaseLogger } from 'fastify';
import type { Tier, TierLimit } from '../config.ts';
import { COUNT, COUNT_MANY, RESOLVE_AND_COUNT } from './count.lua.ts';
import { type Count, MemoryStore } from './memory-store.ts';

const COUNT_SCRIPT = defineScript<[windowMs: number], [number, number]>({
  name: 'rateLimitCount',
  lua: COUNT,
  keys: ['rateLimit'],
});

/** Known to cross slots (count-many.lua says why): the rate-limit tiers of one request. */
const COUNT_MANY_SCRIPT = defineScript<number[], number[]>({
  name: 'rateLimitCountMany',
  lua: COUNT_MANY,
  keys: ['rateLimit'],
  repeatKeys: true,
  crossSlot:
    'counts the tiers of one request, whose counters have tags of their own (count.lua.ts); on a cluster `countEach` counts them one by one instead',
});

/** Known to cross slots, and to build a key in Lua (resolve-and-count.lua says why). */
const RESOLVE_AND_COUNT_SCRIPT = defineScript<
  [
    userKeyBefore: string,
    userKeyAfter: string,
    userWindowMs: number,
    anonymousWindowMs: number,
    addressWindowMs: number,
  ],
  [string[], 'user' | 'anonymous', number, number, number, number]
>({
  name: 'resolveAndCount',
  lua: RESOLVE_AND_COUNT,
  keys: ['session', 'rateLimit', 'rateLimit'],
  crossSlot:
    'reads the session and counts its caller in one round trip, and builds the user counter in Lua (count.lua.ts); on a cluster `readSessionThenCount` does it in two',
});

/** Counts made ahead of the rate-limit hook, by the key they were made on. */
export type Precount = Map<string, Count>;

export interface RateCounterOptions {
  redis: RedisClient;
  keys: Keys;
  limits: Record<Tier, TierLimit>;
  onStoreError: 'open' | 'closed';
  log: FastifyBaseLogger;
  registry: Registry;
}

export class RateCounter {
  private readonly redis: RedisClient;
  private readonly opts: RateCounterOptions;
  private readonly memory = new MemoryStore();
  private readonly userKey: [string, string];
  private readonly fallbacks: Counter<'reason'>;
  private outage = false;

  constructor(opts: RateCounterOptions) {
    this.redis = opts.redis;
    this.opts = opts;
    // The user counter's key around the id, from the one place keys are built.
    const [before = '', after = ''] = opts.keys.rateLimit('user', '*').split('*');
    this.userKey = [before, after];
    this.fallbacks = new Counter({
      name: 'gateway_rate_limit_fallbacks_total',
      help: 'Requests counted in memory (fail open) or refused (fail closed) because redis-session could not count',
      labelNames: ['reason'] as const,
      registers: [opts.registry],
    });
  }

  /** The Redis key of one caller's counter in a tier. */
  keyOf(tier: Tier, id: string): string {
    return this.opts.keys.rateLimit(tier, id);
  }

  /**
   * Reads a session record and counts the request in one round trip: against the user's tier when the
   * record names a user, else against the client address's anonymous tier, and in either case against
   * the client address's ceiling (`address`). Returns the record (for SessionStore.accept) and the
   * counts made, which the rate-limit hook then uses as they are.
   */
  async readSessionAndCount(
    located: LocatedSession,
    clientAddress: string,
  ): Promise<{ record: Record<string, string>; precount: Precount }> {
    const anonymousKey = this.keyOf('anonymous', clientAddress);
    const addressKey = this.keyOf('address', clientAddress);
    if (isCluster(this.redis)) return this.readSessionThenCount(located, anonymousKey, addressKey);
    const [flat, tier, current, ttl, addressCurrent, addressTtl] = await RESOLVE_AND_COUNT_SCRIPT.run(
      this.redis,
      [located.key, anonymousKey, addressKey],
      this.userKey[0],
      this.userKey[1],
      this.opts.limits.user.windowMs,
      this.opts.limits.anonymous.windowMs,
      this.opts.limits.address.windowMs,
    );
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i] as string] = flat[i + 1] as string;
    this.recovered();
    const key = tier === 'user' ? this.keyOf('user', record.userId as string) : anonymousKey;
    return {
      record,
      precount: new Map([
        [key, { current, ttl }],
        [addressKey, { current: addressCurrent, ttl: addressTtl }],
      ]),
    };
  }

  /**
   * `readSessionAndCount` on a Redis Cluster, where a script may touch only the keys it is given, all in
   * one slot: the record, the user's counter and the address counter are each in a slot of their own,
   * and the user's counter is known only once the record is read. So: the record first (HGETALL), then
   * the two counts, each its own one-key script, sent together. Two round trips instead of one (the
   * second to one or two nodes at once), on a cluster only; one server and Sentinel keep the one script.
   */
  private async readSessionThenCount(
    located: LocatedSession,
    anonymousKey: string,
    addressKey: string,
  ): Promise<{ record: Record<string, string>; precount: Precount }> {
    const { limits } = this.opts;
    const record = await this.redis.hgetall(located.key);
    const tierCounter = record.userId
      ? { key: this.keyOf('user', record.userId), windowMs: limits.user.windowMs }
      : { key: anonymousKey, windowMs: limits.anonymous.windowMs };
    const precount = await this.countEach([
      tierCounter,
      { key: addressKey, windowMs: limits.address.windowMs },
    ]);
    this.recovered();
    return { record, precount };
  }

  /**
   * Each counter with its own one-key script, sent in the same tick: on a cluster, where the counters of
   * one request are in different slots and one script may not count them all.
   */
  private async countEach(counters: ReadonlyArray<{ key: string; windowMs: number }>): Promise<Precount> {
    const counts = await Promise.all(counters.map((c) => COUNT_SCRIPT.run(this.redis, [c.key], c.windowMs)));
    return new Map(
      counters.map((c, i) => [c.key, { current: counts[i]?.[0] ?? 0, ttl: counts[i]?.[1] ?? 0 }]),
    );
  }

  /**
   * Counts one request on several counters in one round trip (one script; on a cluster `countEach`). When redis-session cannot
   * count: in memory (fail open) or a 503 (fail closed), counted once per request on /metrics.
   */
  async countAll(counters: ReadonlyArray<{ key: string; windowMs: number }>): Promise<Precount> {
    const out: Precount = new Map();
    try {
      if (isCluster(this.redis)) {
        const counted = await this.countEach(counters);
        this.recovered();
        return counted;
      }
      const flat = await COUNT_MANY_SCRIPT.run(
        this.redis,
        counters.map((c) => c.key),
        ...counters.map((c) => c.windowMs),
      );
      this.recovered();
      counters.forEach((c, i) => {
        out.set(c.key, { current: flat[2 * i] as number, ttl: flat[2 * i + 1] as number });
      });
      return out;
    } catch (err) {
      this.storeFailed(err as Error);
      for (const c of counters) out.set(c.key, this.memory.incr(c.key, c.windowMs));
      return out;
    }
  }

  /** Logs an outage once and counts the fallback; throws 503 when the limits fail closed. */
  private storeFailed(err: Error): void {
    if (!this.outage) {
      this.outage = true;
      this.opts.log.warn(
        { err: { message: err.message }, onStoreError: this.opts.onStoreError },
        this.opts.onStoreError === 'open'
          ? 'rate-limit store unavailable, counting in memory until it is back'
          : 'rate-limit store unavailable, refusing requests until it is back',
      );
    }
    if (this.opts.onStoreError === 'closed') {
      this.fallbacks.inc({ reason: 'refused' });
      throw new AppError('RATE_LIMIT_UNAVAILABLE');
    }
    this.fallbacks.inc({ reason: 'memory' });
  }

  private recovered(): void {
    if (!this.outage) return;
    this.outage = false;
    this.opts.log.info('rate-limit store is back, counting in redis-session again');
  }
}
