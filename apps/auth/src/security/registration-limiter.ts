/**
 * Sign-ups per client address: each costs a password hash (and an account), yet no failed attempt is
 * ever counted for one, so without a limit of its own a few addresses registering in a loop keep the
 * hashing pool busy for as long as they like. A counter per place in redis-session
 * (`signup:{<address|prefix>}`, its TTL set by the script that counts): an IPv4 address, and an IPv6
 * client at its /64, /56 and /48 (one subscriber holds thousands of /64s), each with
 * `REGISTRATION_MAX_PER_ADDRESS` per `REGISTRATION_WINDOW_S`; beyond it 429
 * `AUTH_TOO_MANY_REGISTRATIONS` with Retry-After, before any hash. The default leaves room for a class
 * behind one NAT signing up together.
 */

import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import { countFailure, giveBack } from './count-failure.lua.ts';
import { addressPrefixes } from './login-limiter.ts';

export interface RegistrationLimits {
  /** Sign-ups per IPv4 address, and per IPv6 /64, /56 and /48, in one window. */
  maxPerAddress: number;
  windowMs: number;
}

export class RegistrationLimiter {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly limits: RegistrationLimits;

  constructor(redis: RedisClient, keys: Keys, limits: RegistrationLimits) {
    this.redis = redis;
    this.keys = keys;
    this.limits = limits;
  }

  /**
   * Counts one sign-up from `ip`; throws 429 when any of its places is over the limit (and then counts
   * nothing: a refused sign-up cost nothing). Returns what gives the sign-up back, for one that never
   * came to hash a password (the pool was busy).
   */
  async count(ip: string): Promise<{ giveBack(): Promise<void> }> {
    const keys = addressPrefixes(ip).map((place) => this.keys.signups(place));
    const giveBackAll = async () => {
      await Promise.all(keys.map((key) => giveBack(this.redis, key)));
    };
    const counts = await Promise.all(keys.map((key) => countFailure(this.redis, key, this.limits.windowMs)));
    const over = counts.filter(([count]) => count > this.limits.maxPerAddress);
    if (over.length > 0) {
      await giveBackAll();
      const retryAfterMs = Math.max(1000, ...over.map(([, ttl]) => ttl));
      throw new AppError('AUTH_TOO_MANY_REGISTRATIONS', undefined, {
        'retry-after': String(Math.ceil(retryAfterMs / 1000)),
      });
    }
    return { giveBack: giveBackAll };
  }
}
