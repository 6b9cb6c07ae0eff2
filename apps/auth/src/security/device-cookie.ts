/**
 * Device cookies (OWASP, "Slow Down Online Guessing Attacks with Device Cookies"): a browser that signed
 * in to an account gets an HttpOnly cookie holding a random value; redis-session keeps only its hash,
 * with the account it was issued for (the limiter's hash of the email) and the cookie's lifetime as TTL.
 * A login from a client presenting a valid device cookie for that account is counted by the device alone
 * (login-limiter.ts), so strangers pushing the account to its ceiling never lock its owner out of a
 * browser they used before.
 *
 * Issued to browsers only (requests with `Sec-Fetch-Site`, as the session cookie): an API client has no
 * cookie jar to keep it in, and every issued cookie is a key in Redis for its whole life. A cookie that
 * is missing, unknown, expired or for another account makes the client untrusted, nothing more.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Keys } from '@atoll/redis-keys';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';

export interface DeviceCookieSettings {
  name: string;
  /** Secure cookies are sent over HTTPS only; off only for plain-HTTP local development. */
  secure: boolean;
  ttlS: number;
}

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');

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
  private readonly redis: Redis;
  private readonly keys: Keys;
  readonly settings: DeviceCookieSettings;

  constructor(redis: Redis, keys: Keys, settings: DeviceCookieSettings) {
    this.redis = redis;
    this.keys = keys;
    this.settings = settings;
  }

  /** The device cookie a request carries, if any (only the shape is checked here). */
  read(request: FastifyRequest): string | null {
    const value = cookieValue(request.headers.cookie, this.settings.name);
    return value && /^[A-Za-z0-9_-]{43}$/.test(value) ? value : null;
  }

  /** The hash of `token` when it is a live device cookie of `account`, else null. */
  async trusted(token: string | null, account: string): Promise<string | null> {
    if (token === null) return null;
    const hash = sha256(token);
    const issuedFor = await this.redis.get(this.keys.deviceCookie(hash));
    return issuedFor === account ? hash : null;
  }

  /** A new device cookie for `account`; returns its value, to be sent once in Set-Cookie. */
  async issue(account: string): Promise<string> {
    const token = randomBytes(32).toString('base64url');
    await this.redis.set(this.keys.deviceCookie(sha256(token)), account, 'EX', this.settings.ttlS);
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
