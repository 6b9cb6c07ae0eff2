/**
 * Brute-force protection for login: failed attempts are counted per account and per client address in
 * redis-session (counters that always carry a TTL, see count-failure.lua.ts). Once either reaches its
 * limit, login answers 429 with Retry-After until the window ends, whether or not the account exists
 * and whatever password is tried, so the answer reveals nothing. A successful login clears the account's
 * counter; the address counter runs out on its own.
 */
import { createHash } from 'node:crypto';
import type { Keys } from '@atoll/redis-keys';
import type { Redis } from 'ioredis';
import { COUNT_FAILURE } from './count-failure.lua.ts';

export interface LoginLimits {
  perAccount: number;
  perAddress: number;
  windowMs: number;
}

type ScriptedRedis = Redis & { countFailure(key: string, windowMs: number): Promise<[number, number]> };

export class LoginLimiter {
  private readonly redis: ScriptedRedis;
  private readonly keys: Keys;
  private readonly limits: LoginLimits;

  constructor(redis: Redis, keys: Keys, limits: LoginLimits) {
    if (!('countFailure' in redis))
      redis.defineCommand('countFailure', { numberOfKeys: 1, lua: COUNT_FAILURE });
    this.redis = redis as ScriptedRedis;
    this.keys = keys;
    this.limits = limits;
  }

  private keysFor(email: string, address: string) {
    const account = createHash('sha256').update(email.trim().toLowerCase()).digest('hex').slice(0, 32);
    return {
      account: this.keys.loginFailures('account', account),
      address: this.keys.loginFailures('address', address),
    };
  }

  /** Milliseconds until login is allowed again for this account or address, or 0 when it is allowed. */
  async blockedFor(email: string, address: string): Promise<number> {
    const k = this.keysFor(email, address);
    const [account, byAddress] = await Promise.all([
      this.redis.multi().get(k.account).pttl(k.account).exec(),
      this.redis.multi().get(k.address).pttl(k.address).exec(),
    ]);
    const wait = (result: typeof account, limit: number) => {
      const count = Number(result?.[0]?.[1] ?? 0);
      const ttl = Number(result?.[1]?.[1] ?? 0);
      return count >= limit ? Math.max(ttl, 1000) : 0;
    };
    return Math.max(wait(account, this.limits.perAccount), wait(byAddress, this.limits.perAddress));
  }

  async recordFailure(email: string, address: string): Promise<void> {
    const k = this.keysFor(email, address);
    await Promise.all([
      this.redis.countFailure(k.account, this.limits.windowMs),
      this.redis.countFailure(k.address, this.limits.windowMs),
    ]);
  }

  async recordSuccess(email: string, address: string): Promise<void> {
    await this.redis.del(this.keysFor(email, address).account);
  }
}
