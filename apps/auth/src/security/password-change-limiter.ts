/**
 * Password changes per account: each costs a password hash (and, with the current password, a check),
 * so one account changing its password in a loop could keep the hashing pool busy for everyone. A
 * counter per account in redis-session (`pw-change:{<userId>}`, its TTL set by the script that counts),
 * `PASSWORD_CHANGE_MAX` per `PASSWORD_CHANGE_WINDOW_S`; beyond it 429
 * `AUTH_TOO_MANY_PASSWORD_CHANGES` with Retry-After, before the new password is hashed. (Checking the
 * current password is a guessing attempt, counted by the login limiter, and admitted by the pool.)
 */

import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import { countFailure } from './count-failure.lua.ts';

export interface PasswordChangeLimits {
  max: number;
  windowMs: number;
}

export class PasswordChangeLimiter {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly limits: PasswordChangeLimits;

  constructor(redis: RedisClient, keys: Keys, limits: PasswordChangeLimits) {
    this.redis = redis;
    this.keys = keys;
    this.limits = limits;
  }

  /** Counts one change of `userId`'s password; throws 429 when it is over the limit. */
  async count(userId: string): Promise<void> {
    const [count, ttl] = await countFailure(
      this.redis,
      this.keys.passwordChanges(userId),
      this.limits.windowMs,
    );
    if (count > this.limits.max) {
      throw new AppError('AUTH_TOO_MANY_PASSWORD_CHANGES', undefined, {
        'retry-after': String(Math.ceil(Math.max(1000, ttl) / 1000)),
      });
    }
  }
}
