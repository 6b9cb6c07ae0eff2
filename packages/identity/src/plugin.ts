import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  ASSERTION_TTL_SECONDS,
  CLOCK_SKEW_SECONDS,
  IDENTITY_HEADER,
  type Identity,
  SESSION_UNAVAILABLE_HEADER,
  verifyIdentity,
} from './assertion.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, from the gateway's verified assertion; null for anonymous requests. */
    identity: Identity | null;
    /** The gateway could not reach the session store, so an anonymous request may not really be one. */
    identityUnavailable: boolean;
    /** The client's address: from the gateway's assertion, or the socket's when called directly. */
    clientIp: string;
  }
}

export interface IdentityPluginOptions {
  secrets: readonly string[];
}

/**
 * Remembers the assertions this process has accepted for as long as they could still be accepted, so
 * each is used once: a header captured inside the network cannot be sent again, even with the request id
 * it names. Two generations of a Set, swapped every `periodMs` (at least the assertion's life plus the
 * clock skew on both sides), hold every assertion for one to two periods: memory is bounded by the
 * request rate, and nothing is done per request but one lookup and one insert.
 */
export class ReplayGuard {
  private current = new Set<string>();
  private previous = new Set<string>();
  private rotatedAt: number;
  private readonly periodMs: number;
  private readonly now: () => number;

  constructor(periodMs: number, now: () => number = Date.now) {
    this.periodMs = periodMs;
    this.now = now;
    this.rotatedAt = now();
  }

  /** True the first time `key` is seen within its life, false for a replay. */
  firstUse(key: string): boolean {
    const now = this.now();
    if (now - this.rotatedAt >= this.periodMs) {
      this.previous = now - this.rotatedAt >= 2 * this.periodMs ? new Set() : this.current;
      this.current = new Set();
      this.rotatedAt = now;
    }
    if (this.current.has(key) || this.previous.has(key)) return false;
    this.current.add(key);
    return true;
  }
}

/**
 * Verifies the gateway's identity assertion on every request. A request without one (a direct call inside
 * the network) is anonymous with its socket's address; one with an invalid or expired assertion, one
 * issued for another request, or one this process has already accepted is rejected with 401 before any
 * handler runs.
 */
const identityPlugin: FastifyPluginAsync<IdentityPluginOptions> = async (app, opts) => {
  app.decorateRequest('identity', null);
  app.decorateRequest('identityUnavailable', false);
  app.decorateRequest('clientIp', '');
  const seen = new ReplayGuard((ASSERTION_TTL_SECONDS + 2 * CLOCK_SKEW_SECONDS) * 1000);
  // A callback hook (no promise per request): it runs on every request of every service.
  app.addHook('onRequest', (request, reply, done) => {
    request.identityUnavailable = request.headers[SESSION_UNAVAILABLE_HEADER] === '1';
    request.clientIp = request.ip;
    const header = request.headers[IDENTITY_HEADER];
    if (header === undefined) return done();
    const result =
      typeof header === 'string'
        ? verifyIdentity(header, { secrets: opts.secrets, requestId: request.id })
        : ({ ok: false, reason: 'malformed' } as const);
    // The MAC names the assertion: a replay is the very same string.
    const replayed = result.ok && !seen.firstUse((header as string).slice(-43));
    if (!result.ok || replayed) {
      request.log.warn({ reason: result.ok ? 'replayed' : result.reason }, 'rejected identity assertion');
      reply.code(401).send({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
      return;
    }
    request.identity = result.identity;
    request.clientIp = result.clientIp;
    done();
  });
};

export default fp(identityPlugin, { name: '@atoll/identity', fastify: '5.x' });

/**
 * The caller's identity, or a 401 in the RealWorld shape when the request is anonymous, or a 503 when
 * the gateway could not reach the session store (design.md: authenticated routes 503, quickly).
 */
export function requireIdentity(request: FastifyRequest): Identity {
  if (!request.identity && request.identityUnavailable) {
    throw Object.assign(new Error('session store unavailable'), {
      statusCode: 503,
      code: 'SESSION_STORE_UNAVAILABLE',
      errors: { session: ['cannot be checked right now, try again shortly'] },
    });
  }
  if (!request.identity) {
    throw Object.assign(new Error('token is missing'), {
      statusCode: 401,
      code: 'TOKEN_MISSING',
      errors: { token: ['is missing'] },
    });
  }
  return request.identity;
}
