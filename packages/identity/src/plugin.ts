import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { IDENTITY_HEADER, type Identity, SESSION_UNAVAILABLE_HEADER, verifyIdentity } from './assertion.ts';

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
 * Verifies the gateway's identity assertion on every request. A request without one (a direct call inside
 * the network) is anonymous with its socket's address; one with an invalid, expired or replayed
 * assertion is rejected with 401 before any handler runs.
 */
const identityPlugin: FastifyPluginAsync<IdentityPluginOptions> = async (app, opts) => {
  app.decorateRequest('identity', null);
  app.decorateRequest('identityUnavailable', false);
  app.decorateRequest('clientIp', '');
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
    if (!result.ok) {
      request.log.warn({ reason: result.reason }, 'rejected identity assertion');
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
