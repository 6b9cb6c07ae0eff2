import type { KeyObject } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  CLOCK_SKEW_SECONDS,
  IDENTITY_HEADER,
  type Identity,
  IdentityVerifier,
  MAX_ASSERTION_LIFE_SECONDS,
} from './assertion.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling, from the gateway's verified assertion; null for anonymous requests. */
    identity: Identity | null;
    /** The gateway could not reach the session store, so an anonymous request may not really be one. */
    identityUnavailable: boolean;
    /** The client's address, from the gateway's assertion. */
    clientIp: string;
  }
  interface FastifyContextConfig {
    /**
     * `false`: this route answers without an assertion. Only for a read-only route that another service
     * (which cannot make assertions) must call, and that answers nothing more than public data.
     */
    identity?: false;
  }
}

export interface IdentityPluginOptions {
  /** This service's name: the audience an assertion must be for. */
  audience: string;
  /** The gateway's public key, and during a rotation the other one. */
  publicKeys: readonly KeyObject[];
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
 * How long the replay guard remembers an assertion at least: as long as any assertion can be accepted.
 * Times are whole seconds, so one with the longest life is accepted from `iat - skew` to the last
 * millisecond of the second `exp + skew`: its life, twice the skew, and one second more.
 */
export const REPLAY_MEMORY_MS = (MAX_ASSERTION_LIFE_SECONDS + 2 * CLOCK_SKEW_SECONDS + 1) * 1000;

/** Routes every service answers without an assertion: probes, and metrics behind their own token. */
export function isOpenRoute(routeUrl: string | undefined): boolean {
  return routeUrl === '/metrics' || (routeUrl?.startsWith('/health/') ?? false);
}

/**
 * Verifies the gateway's identity assertion on every request but health and metrics (and a route that
 * says `config: { identity: false }`). A request without one (a direct call from inside the network) is
 * refused with 401 `identity: is missing`; one with an invalid or expired assertion, one made for another
 * service, method, URL or request id, or one this process has already accepted is refused with 401
 * `identity: is invalid`, before any handler runs. No header but the assertion says anything about the
 * caller.
 */
const identityPlugin: FastifyPluginAsync<IdentityPluginOptions> = async (app, opts) => {
  app.decorateRequest('identity', null);
  app.decorateRequest('identityUnavailable', false);
  app.decorateRequest('clientIp', '');
  const verifier = new IdentityVerifier({ audience: opts.audience, publicKeys: opts.publicKeys });
  // Everything a service accepts is remembered until it could not be accepted any more.
  const seen = new ReplayGuard(REPLAY_MEMORY_MS);
  // A callback hook (no promise per request): it runs on every request of every service.
  app.addHook('onRequest', (request, reply, done) => {
    const header = request.headers[IDENTITY_HEADER];
    if (header === undefined) {
      if (isOpenRoute(request.routeOptions.url) || request.routeOptions.config.identity === false) {
        request.clientIp = request.ip;
        return done();
      }
      request.log.warn({ reason: 'missing' }, 'refused a request without an identity assertion');
      reply.code(401).send({ errors: { identity: ['is missing'] }, code: 'IDENTITY_MISSING' });
      return;
    }
    const result =
      typeof header === 'string'
        ? verifier.verify(header, { method: request.method, url: request.url, requestId: request.id })
        : ({ ok: false, reason: 'malformed' } as const);
    // One key per signed payload: strict decoding gives each exactly one spelling.
    const replayed = result.ok && !seen.firstUse(result.replayKey);
    if (!result.ok || replayed) {
      request.log.warn({ reason: result.ok ? 'replayed' : result.reason }, 'rejected identity assertion');
      reply.code(401).send({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
      return;
    }
    request.identity = result.identity;
    request.identityUnavailable = result.sessionUnavailable;
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
