/**
 * Counting requests for the rate limits, on redis-session, with one atomic script per count (see
 * count.lua.ts), and the session lookup of an authenticated request folded into the same round trip
 * (`readSessionAndCount`, used by the session plugin).
 *
 * It is the custom store of @fastify/rate-limit (`incr(key, cb, window, max)`): a count already made
 * by `readSessionAndCount` for this request is handed to the plugin through an AsyncLocalStorage (the
 * plugin's store API carries only the key, not the request), so it is not counted twice.
 *
 * When redis-session cannot count (down, or slower than the command timeout), the default is to fail
 * open: the request is counted in memory instead (memory-store.ts), the outage is logged once when it
 * starts and once when Redis is back, and every fallback is counted on /metrics. With `closed`, the
 * request is refused with 503 instead.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { Keys } from '@atoll/redis-keys';
import { AppError, Counter, type Registry } from '@atoll/service-kit';
import type { LocatedSession } from '@atoll/session-store';
import type { FastifyBaseLogger } from 'fastify';
import type { Redis } from 'ioredis';
import type { Tier, TierLimit } from '../config.ts';
import { COUNT, RESOLVE_AND_COUNT } from './count.lua.ts';
import { type Count, memoryStore } from './memory-store.ts';

type ScriptedRedis = Redis & {
  rateLimitCount(key: string, windowMs: number): Promise<[number, number]>;
  resolveAndCount(
    sessionKey: string,
    anonymousKey: string,
    userKeyBefore: string,
    userKeyAfter: string,
    userWindowMs: number,
    anonymousWindowMs: number,
  ): Promise<[string[], 'user' | 'anonymous', number, number]>;
};

/** A count made ahead of the rate-limit hook, for the key it was made on. */
export interface Precount {
  key: string;
  count: Count;
}

export interface RateCounterOptions {
  redis: Redis;
  keys: Keys;
  limits: Record<Tier, TierLimit>;
  onStoreError: 'open' | 'closed';
  log: FastifyBaseLogger;
  registry: Registry;
}

export class RateCounter {
  /** The count `readSessionAndCount` made for the request being limited, if any. */
  readonly precounted = new AsyncLocalStorage<Precount | undefined>();
  private readonly redis: ScriptedRedis;
  private readonly opts: RateCounterOptions;
  private readonly memory = memoryStore();
  private readonly userKey: [string, string];
  private readonly fallbacks: Counter<'reason'>;
  private outage = false;

  constructor(opts: RateCounterOptions) {
    const redis = opts.redis;
    if (!('rateLimitCount' in redis)) redis.defineCommand('rateLimitCount', { numberOfKeys: 1, lua: COUNT });
    if (!('resolveAndCount' in redis))
      redis.defineCommand('resolveAndCount', { numberOfKeys: 2, lua: RESOLVE_AND_COUNT });
    this.redis = redis as ScriptedRedis;
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
   * record names a user, else against the client address's anonymous tier. Returns the record (for
   * SessionStore.accept) and the count made, which the rate-limit hook then uses as it is.
   */
  async readSessionAndCount(
    located: LocatedSession,
    clientAddress: string,
  ): Promise<{ record: Record<string, string>; precount: Precount }> {
    const anonymousKey = this.keyOf('anonymous', clientAddress);
    const [flat, tier, current, ttl] = await this.redis.resolveAndCount(
      located.key,
      anonymousKey,
      this.userKey[0],
      this.userKey[1],
      this.opts.limits.user.windowMs,
      this.opts.limits.anonymous.windowMs,
    );
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < flat.length; i += 2) record[flat[i] as string] = flat[i + 1] as string;
    this.recovered();
    const key = tier === 'user' ? this.keyOf('user', record.userId as string) : anonymousKey;
    return { record, precount: { key, count: { current, ttl } } };
  }

  /** The @fastify/rate-limit store interface. */
  incr(key: string, cb: (err: Error | null, result?: Count) => void, windowMs: number, max: number): void {
    const pre = this.precounted.getStore();
    if (pre && pre.key === key) {
      cb(null, pre.count);
      return;
    }
    this.redis.rateLimitCount(key, windowMs).then(
      ([current, ttl]) => {
        this.recovered();
        cb(null, { current, ttl });
      },
      (err: Error) => this.fallBack(err, key, cb, windowMs, max),
    );
  }

  /** Every tier shares this store; tiers differ by key. */
  child(): this {
    return this;
  }

  private fallBack(
    err: Error,
    key: string,
    cb: (err: Error | null, result?: Count) => void,
    windowMs: number,
    max: number,
  ): void {
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
      cb(new AppError('RATE_LIMIT_UNAVAILABLE'));
      return;
    }
    this.fallbacks.inc({ reason: 'memory' });
    this.memory.incr(key, (e, result) => cb(e, result), windowMs, max);
  }

  private recovered(): void {
    if (!this.outage) return;
    this.outage = false;
    this.opts.log.info('rate-limit store is back, counting in redis-session again');
  }
}
