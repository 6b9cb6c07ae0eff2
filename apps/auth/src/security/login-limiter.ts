/**
 * Brute-force protection: what it counts is failed attempts at a secret (a password at login, an email
 * verification code, a password-reset token), in redis-session, with counters that always carry a TTL
 * (count-failure.lua.ts). Three counters per attempt:
 * - per account and client address (LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS): stops guessing from one
 *   place, and is the one a user meets after mistyping;
 * - per client address (LOGIN_MAX_FAILURES_PER_ADDRESS): stops one place guessing across accounts;
 * - per account (LOGIN_MAX_FAILURES_PER_ACCOUNT): a higher ceiling against guessing from many places,
 *   high enough that a few addresses cannot lock the owner out.
 * An account is a hash (of the email, or of the user id for codes), so Redis holds no address book.
 *
 * An attempt is counted before the secret is checked and given back when it turns out right (or when it
 * is refused), so attempts running in parallel cannot all pass a check made before any of them was
 * counted: each gets its own count, and only those within every limit go on. Refused attempts answer 429 with Retry-After,
 * whether or not the account exists and whatever is tried, so the answer reveals nothing.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Keys } from '@atoll/redis-keys';
import type { Redis } from 'ioredis';
import { COUNT_FAILURE, GIVE_BACK } from './count-failure.lua.ts';

export interface LoginLimits {
  perAccountAddress: number;
  perAddress: number;
  perAccount: number;
  windowMs: number;
}

/** One counted attempt: refused already, or allowed and to be settled as right or wrong. */
export type Attempt =
  | { allowed: false; retryAfterMs: number }
  | {
      allowed: true;
      /** The secret was right: this attempt was no failure. */
      succeeded(): Promise<void>;
      /** The secret was never checked (hashing busy): the attempt is given back everywhere. */
      abandoned(): Promise<void>;
    };

type ScriptedRedis = Redis & {
  countFailure(key: string, windowMs: number): Promise<[number, number]>;
  giveBack(key: string): Promise<number>;
};

/** The address a limit counts: IPv4 as it is (also when IPv4-mapped), IPv6 as its /64. */
export function limitAddress(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1] as string;
  if (isIP(ip) !== 6) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

export const accountOf = (kind: 'email' | 'user', value: string) =>
  createHash('sha256')
    .update(`${kind}:${kind === 'email' ? value.trim().toLowerCase() : value}`)
    .digest('hex')
    .slice(0, 32);

export class LoginLimiter {
  private readonly redis: ScriptedRedis;
  private readonly keys: Keys;
  private readonly limits: LoginLimits;

  constructor(redis: Redis, keys: Keys, limits: LoginLimits) {
    if (!('countFailure' in redis))
      redis.defineCommand('countFailure', { numberOfKeys: 1, lua: COUNT_FAILURE });
    if (!('giveBack' in redis)) redis.defineCommand('giveBack', { numberOfKeys: 1, lua: GIVE_BACK });
    this.redis = redis as ScriptedRedis;
    this.keys = keys;
    this.limits = limits;
  }

  /**
   * Counts an attempt on `account` (from `accountOf`, or null when the secret names no account, like a
   * reset token) from `address`. When it is allowed, call `succeeded()` if the secret was right.
   */
  async begin(account: string | null, address: string): Promise<Attempt> {
    address = limitAddress(address);
    const counters: Array<[string, number]> = [
      [this.keys.loginFailures('address', address), this.limits.perAddress],
    ];
    if (account !== null) {
      counters.push(
        [this.keys.loginFailures('account-address', `${account}:${address}`), this.limits.perAccountAddress],
        [this.keys.loginFailures('account', account), this.limits.perAccount],
      );
    }
    const counts = await Promise.all(
      counters.map(([key]) => this.redis.countFailure(key, this.limits.windowMs)),
    );
    const over = counts.filter(([count], i) => count > (counters[i]?.[1] ?? 0));
    if (over.length > 0) {
      // A refused attempt tried nothing: it is given back, so being refused at one address never adds
      // to the account's ceiling (which would let one address lock the owner out everywhere).
      await Promise.all(counters.map(([key]) => this.redis.giveBack(key)));
      return { allowed: false, retryAfterMs: Math.max(1000, ...over.map(([, ttl]) => ttl)) };
    }
    return {
      allowed: true,
      abandoned: async () => {
        await Promise.all(counters.map(([key]) => this.redis.giveBack(key)));
      },
      succeeded: async () => {
        // Right: this attempt was no failure. The account-and-address counter starts over (the owner
        // got in from here); the others only give this attempt back.
        const [address, accountAddress, accountKey] = counters.map(([key]) => key as string);
        await Promise.all([
          this.redis.giveBack(address as string),
          accountAddress ? this.redis.del(accountAddress) : null,
          accountKey ? this.redis.giveBack(accountKey) : null,
        ]);
      },
    };
  }
}
