/**
 * Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed
 * in to an account gets an HttpOnly cookie holding a random value. A login from a client presenting a
 * valid device cookie for that account is counted by the device alone (login-limiter.ts), so strangers
 * pushing the account to its ceiling never lock its owner out of a browser they used before.
 *
 * A cookie is valid for one account as its credentials were when it was issued: redis-session keeps,
 * per account id (`devices:{<userId>}`, a Sorted Set), the hash of each cookie's value together with a
 * fingerprint of the user id and the password hash (`credentialsOf`), scored by its expiry. So a cookie
 * says nothing about another account at the same address (registered after the first moved away: the
 * address is no account), and stops counting after a password change, a reset or a Google link that
 * clears the password: whoever got it under the old credentials gets the untrusted limits. (A login
 * that replaces a hash made at a lower cost issues that browser a new one.) An account keeps at most
 * `DEVICE_COOKIE_MAX_PER_ACCOUNT` live cookies, the newest: nobody can mint an army of them.
 *
 * Issued to browsers only (requests with `Sec-Fetch-Site`, as the session cookie): an API client has no
 * cookie jar to keep it in. A cookie that is missing, unknown, expired, dropped or for another account
 * or other credentials makes the client untrusted, nothing more.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UserRow } from '../users/user.repository.ts';
import { ISSUE_DEVICE } from './issue-device.lua.ts';

export interface DeviceCookieSettings {
  name: string;
  /** Secure cookies are sent over HTTPS only; off only for plain-HTTP local development. */
  secure: boolean;
  ttlS: number;
  /** Live cookies one account keeps (the newest). */
  maxPerAccount: number;
}

/** What a device cookie is bound to: the account and its credentials now. */
export type DeviceAccount = Pick<UserRow, 'id' | 'password_hash'>;

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

/**
 * A fingerprint of an account's credentials: its id and its password hash (none for a Google-only
 * account). A new password, a reset or a cleared password changes it; so does a rehash at a new cost.
 */
export const credentialsOf = (user: DeviceAccount): string =>
  sha256(`${user.id}\n${user.password_hash ?? ''}`).slice(0, 32);

/** The value of one cookie in a Cookie header, or null. */
export function cookieValue(header: string | undefined, name: string): string | null {
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || null;
  }
  return null;
}

export class DeviceCookies {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  readonly settings: DeviceCookieSettings;
  private readonly now: () => number;

  constructor(redis: RedisClient, keys: Keys, settings: DeviceCookieSettings, now: () => number = Date.now) {
    this.redis = redis;
    this.keys = keys;
    this.settings = settings;
    this.now = now;
  }

  /** The device cookie a request carries, if any (only the shape is checked here). */
  read(request: FastifyRequest): string | null {
    const value = cookieValue(request.headers.cookie, this.settings.name);
    return value && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : null;
  }

  /**
   * The hash of `token` when it is a live device cookie of `user`, issued under the credentials it has
   * now; else null.
   */
  async trusted(token: string | null, user: DeviceAccount): Promise<string | null> {
    if (token === null) return null;
    const hash = sha256(token);
    const expires = await this.redis.zscore(this.keys.devices(user.id), `${hash}:${credentialsOf(user)}`);
    return expires !== null && Number(expires) > this.now() ? hash : null;
  }

  /**
   * A new device cookie for `user` as it is now; returns its value, to be sent once in Set-Cookie. The
   * account's cookies of older credentials, and any beyond the newest `maxPerAccount`, stop counting.
   */
  async issue(user: DeviceAccount): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await ISSUE_DEVICE.run(
      this.redis,
      [this.keys.devices(user.id)],
      sha256(token),
      credentialsOf(user),
      this.now(),
      this.settings.ttlS * 1000,
      this.settings.maxPerAccount,
    );
    return token;
  }

  /** Sets the cookie (HttpOnly, SameSite=Lax, Path=/, Secure outside local development). */
  set(reply: FastifyReply, token: string): void {
    reply.header(
      'set-cookie',
      [
        `${this.settings.name}=${token}`,
        'Path=/',
        `Max-Age=${this.settings.ttlS}`,
        'HttpOnly',
        'SameSite=Lax',
        ...(this.settings.secure ? ['Secure'] : []),
      ].join('; '),
    );
  }
}
