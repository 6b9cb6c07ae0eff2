/**
 * Brute-force protection: what it counts is failed attempts at a secret (a password at login, an email
 * verification code, a password-reset token), in redis-session, with counters that always carry a TTL
 * (count-failure.lua.ts). The counters of an attempt:
 * - per account and client address (LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS): stops guessing from one
 *   place, and is the one a user meets after mistyping;
 * - per client address (LOGIN_MAX_FAILURES_PER_ADDRESS): stops one place guessing across accounts;
 * - per account (LOGIN_MAX_FAILURES_PER_ACCOUNT): a higher ceiling against guessing from many places.
 * An address is IPv4 as it is, or an IPv6 /64; an IPv6 client is also counted by its /56 and its /48,
 * each prefix with its own ceilings (per account and prefix, and per prefix), since one subscriber or
 * site holds thousands of /64s.
 *
 * A client that presents a valid device cookie for the account (device-cookie.ts: it signed in to this
 * account from this browser before) is counted by that device alone (LOGIN_MAX_FAILURES_PER_DEVICE):
 * strangers guessing from many addresses can push the account to its ceiling, but never lock its owner
 * out of a browser they used before, and a stolen device cookie gives a handful of guesses, no more
 * (OWASP's "device cookies").
 *
 * An account is a hash (of the email, or of the user id for codes), so Redis holds no address book.
 *
 * An attempt is counted before the secret is checked and given back when it turns out right (or when it
 * is refused), so attempts running in parallel cannot all pass a check made before any of them was
 * counted: each gets its own count, and only those within every limit go on. Refused attempts answer 429 with Retry-After,
 * whether or not the account exists and whatever is tried, so the answer reveals nothing.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { countFailure, giveBack } from './count-failure.lua.ts';

export interface LoginLimits {
  /** Per account and IPv4 address or IPv6 /64. */
  perAccountAddress: number;
  /** Per IPv4 address or IPv6 /64. */
  perAddress: number;
  perAccount: number;
  /** IPv6 only: per account and /56, per account and /48, per /56, per /48. */
  perAccountPrefix56: number;
  perAccountPrefix48: number;
  perPrefix56: number;
  perPrefix48: number;
  /** Per device cookie (a trusted client), instead of all the above. */
  perDevice: number;
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

/** The eight 16-bit groups of an IPv6 address. */
function ipv6Groups(ip: string): number[] {
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = ip.includes('::') ? (tail ? tail.split(':') : []) : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return groups.map((g) => Number.parseInt(g, 16));
}

/**
 * The places an address is counted as, narrowest first: IPv4 as it is (also when IPv4-mapped), IPv6 as
 * its /64, /56 and /48.
 */
export function addressPrefixes(ip: string): [string] | [string, string, string] {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return [mapped[1] as string];
  if (isIP(ip) !== 6) return [ip];
  const g = ipv6Groups(ip);
  const hex = (groups: number[]) => groups.map((x) => x.toString(16)).join(':');
  return [
    `${hex(g.slice(0, 4))}::/64`,
    `${hex([...g.slice(0, 3), (g[3] ?? 0) & 0xff00])}::/56`,
    `${hex(g.slice(0, 3))}::/48`,
  ];
}

/** The address a limit counts: IPv4 as it is (also when IPv4-mapped), IPv6 as its /64. */
export const limitAddress = (ip: string): string => addressPrefixes(ip)[0];

/**
 * Every network a client's share of a common resource (the hashing pool) is counted at: IPv4 as it is
 * and its /24 (a few neighbouring addresses are usually one holder), IPv6 as its /64, /56 and /48.
 */
export function clientNetworks(ip: string): string[] {
  const places = addressPrefixes(ip);
  if (places.length === 3) return places;
  const v4 = /^(\d+\.\d+\.\d+)\.\d+$/.exec(places[0]);
  return v4 ? [places[0], `${v4[1]}.0/24`] : [places[0]];
}

export const accountOf = (kind: 'email' | 'user', value: string) =>
  createHash('sha256')
    .update(`${kind}:${kind === 'email' ? value.trim().toLowerCase() : value}`)
    .digest('hex')
    .slice(0, 32);

export class LoginLimiter {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly limits: LoginLimits;

  constructor(redis: RedisClient, keys: Keys, limits: LoginLimits) {
    this.redis = redis;
    this.keys = keys;
    this.limits = limits;
  }

  /** What one attempt counts against, each with its ceiling; the first is the narrowest place. */
  private countersOf(account: string | null, ip: string, device: string | null): Array<[string, number]> {
    const k = this.keys;
    const l = this.limits;
    if (account !== null && device !== null) return [[k.loginFailures('device', device), l.perDevice]];
    const [address, prefix56, prefix48] = addressPrefixes(ip);
    const counters: Array<[string, number]> = [];
    if (account !== null) {
      counters.push([k.loginFailures('account-address', `${account}:${address}`), l.perAccountAddress]);
    }
    counters.push([k.loginFailures('address', address), l.perAddress]);
    if (prefix56 && prefix48) {
      if (account !== null) {
        counters.push(
          [k.loginFailures('account-address', `${account}:${prefix56}`), l.perAccountPrefix56],
          [k.loginFailures('account-address', `${account}:${prefix48}`), l.perAccountPrefix48],
        );
      }
      counters.push([k.loginFailures('address', prefix56), l.perPrefix56]);
      counters.push([k.loginFailures('address', prefix48), l.perPrefix48]);
    }
    if (account !== null) counters.push([k.loginFailures('account', account), l.perAccount]);
    return counters;
  }

  /**
   * Counts an attempt on `account` (from `accountOf`, or null when the secret names no account, like a
   * reset token) from `address`. `device`: the hash of a device cookie that is valid for this account
   * (DeviceCookies.trusted), or null. When it is allowed, call `succeeded()` if the secret was right.
   */
  async begin(account: string | null, address: string, device: string | null = null): Promise<Attempt> {
    const counters = this.countersOf(account, address, device);
    const giveBackAll = async () => {
      await Promise.all(counters.map(([key]) => giveBack(this.redis, key)));
    };
    const counts = await Promise.all(
      counters.map(([key]) => countFailure(this.redis, key, this.limits.windowMs)),
    );
    const over = counts.filter(([count], i) => count > (counters[i]?.[1] ?? 0));
    if (over.length > 0) {
      // A refused attempt tried nothing: it is given back, so being refused at one address never adds
      // to the account's ceiling (which would let one address lock the owner out everywhere).
      await giveBackAll();
      return { allowed: false, retryAfterMs: Math.max(1000, ...over.map(([, ttl]) => ttl)) };
    }
    return {
      allowed: true,
      abandoned: giveBackAll,
      succeeded: async () => {
        // Right: this attempt was no failure. With an account, the narrowest counter (this account from
        // this address, or this device) starts over: the owner got in from here. The others only give
        // this attempt back.
        const [narrowest, ...rest] = counters.map(([key]) => key);
        await Promise.all([
          account !== null && narrowest
            ? this.redis.del(narrowest)
            : giveBack(this.redis, narrowest as string),
          ...rest.map((key) => giveBack(this.redis, key)),
        ]);
      },
    };
  }
}
