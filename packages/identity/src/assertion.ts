/**
 * The identity assertion: how the gateway tells a service who is calling.
 *
 * The gateway resolves the session token once, then forwards `x-atoll-identity: v1.<payload>.<mac>` on
 * every request, where payload is base64url JSON and mac is HMAC-SHA256(secret, "v1." + payload). It
 * says who the caller is (nobody, for an anonymous request) and from which client address the request
 * came, lives 10 seconds, and names the request id it was issued for, so a captured header cannot be
 * replayed on another request; each service also accepts it once only (plugin.ts), so it cannot be
 * replayed on the same request id either. Services verify it with the same secret (or the previous one, during a
 * rotation) and trust nothing else about the caller.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const IDENTITY_HEADER = 'x-atoll-identity';
/** Every header with this prefix is internal: the gateway strips any a client sends. */
export const INTERNAL_HEADER_PREFIX = 'x-atoll-';
/**
 * Set by the gateway when it could not ask the session store: who is calling is unknown (not "nobody").
 * It can only make a request fail (503 where a user is required), never grant anything.
 */
export const SESSION_UNAVAILABLE_HEADER = 'x-atoll-session-unavailable';

export interface Identity {
  userId: string;
  username: string;
  /** The session's public id (a hash of the token, never the token). */
  sessionId: string;
  roles: string[];
}

interface Payload {
  /** Absent for an anonymous request. */
  sub?: string;
  name?: string;
  sid?: string;
  roles?: string[];
  /** The client's address as the gateway determined it. */
  ip: string;
  rid: string;
  iat: number;
  exp: number;
}

/** What a verified assertion tells a service. */
export interface RequestContext {
  identity: Identity | null;
  clientIp: string;
}

export type VerifyFailure = 'malformed' | 'bad-signature' | 'expired' | 'wrong-request';

export interface SignOptions {
  secret: string;
  requestId: string;
  clientIp: string;
  ttlSeconds?: number;
  now?: number;
}

const VERSION = 'v1';
/** How long an assertion lives: it is used within milliseconds of being made. */
export const ASSERTION_TTL_SECONDS = 10;
/** Clock skew tolerated between the gateway and a service. */
export const CLOCK_SKEW_SECONDS = 5;

function mac(secret: string, data: string): Buffer {
  return createHmac('sha256', secret).update(data).digest();
}

export function signIdentity(identity: Identity | null, opts: SignOptions): string {
  const iat = Math.floor((opts.now ?? Date.now()) / 1000);
  const payload: Payload = {
    ...(identity
      ? { sub: identity.userId, name: identity.username, sid: identity.sessionId, roles: identity.roles }
      : {}),
    ip: opts.clientIp,
    rid: opts.requestId,
    iat,
    exp: iat + (opts.ttlSeconds ?? ASSERTION_TTL_SECONDS),
  };
  const body = `${VERSION}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${body}.${mac(opts.secret, body).toString('base64url')}`;
}

export interface VerifyOptions {
  /** The current secret first, then any previous one still accepted during a rotation. */
  secrets: readonly string[];
  requestId: string;
  now?: number;
  /** Clock skew tolerated between gateway and service, in seconds. */
  skewSeconds?: number;
}

export function verifyIdentity(
  token: string,
  opts: VerifyOptions,
): ({ ok: true } & RequestContext) | { ok: false; reason: VerifyFailure } {
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== VERSION || !parts[1] || !parts[2])
    return { ok: false, reason: 'malformed' };
  const body = `${parts[0]}.${parts[1]}`;
  const given = Buffer.from(parts[2], 'base64url');
  const valid = opts.secrets.some((secret) => {
    const expected = mac(secret, body);
    return expected.length === given.length && timingSafeEqual(expected, given);
  });
  if (!valid) return { ok: false, reason: 'bad-signature' };
  let payload: Payload;
  try {
    payload = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Payload;
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  if (typeof payload.exp !== 'number' || typeof payload.ip !== 'string')
    return { ok: false, reason: 'malformed' };
  const anonymous = payload.sub === undefined;
  if (
    !anonymous &&
    (typeof payload.name !== 'string' || typeof payload.sid !== 'string' || !Array.isArray(payload.roles))
  ) {
    return { ok: false, reason: 'malformed' };
  }
  const now = Math.floor((opts.now ?? Date.now()) / 1000);
  const skew = opts.skewSeconds ?? CLOCK_SKEW_SECONDS;
  if (now > payload.exp + skew || now < payload.iat - skew) return { ok: false, reason: 'expired' };
  if (payload.rid !== opts.requestId) return { ok: false, reason: 'wrong-request' };
  return {
    ok: true,
    clientIp: payload.ip,
    identity: anonymous
      ? null
      : {
          userId: payload.sub as string,
          username: payload.name as string,
          sessionId: payload.sid as string,
          roles: payload.roles as string[],
        },
  };
}
