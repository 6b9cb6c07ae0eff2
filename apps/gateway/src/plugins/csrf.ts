/**
 * CSRF protection for browsers. A state-changing request (anything but GET, HEAD, OPTIONS) that carries
 * the session cookie must come from an allowed origin: its `Origin` (or, without one, its `Referer`) is
 * the gateway's own origin or one of TRUSTED_ORIGINS. Requests that authenticate with the
 * `Authorization` header are not affected: a browser never adds that header by itself, so another site
 * cannot forge it. Rejected requests get 403 before anything reaches a service.
 */
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface CsrfOptions {
  cookieName: string;
  trustedOrigins: readonly string[];
}

function originOf(request: FastifyRequest): string | null {
  const origin = request.headers.origin;
  if (origin && origin !== 'null') return origin;
  const referer = request.headers.referer;
  if (!referer) return null;
  try {
    return new URL(referer).origin;
  } catch {
    return null;
  }
}

function carriesSessionCookie(request: FastifyRequest, cookieName: string): boolean {
  const cookie = request.headers.cookie;
  return !!cookie && cookie.split(';').some((part) => part.trim().startsWith(`${cookieName}=`));
}

const csrfPlugin: FastifyPluginAsync<CsrfOptions> = async (app, opts) => {
  const trusted = new Set(opts.trustedOrigins.map((o) => o.replace(/\/$/, '')));
  // A callback hook (no promise per request): it runs on every request.
  app.addHook('onRequest', (request, _reply, done) => {
    if (SAFE.has(request.method) || request.headers.authorization) return done();
    if (!carriesSessionCookie(request, opts.cookieName)) return done();
    const origin = originOf(request);
    const own = `${request.protocol}://${request.host}`;
    if (origin && (origin === own || trusted.has(origin))) return done();
    request.log.warn({ origin }, 'cross-site request with the session cookie refused');
    done(new AppError('CSRF_ORIGIN_REJECTED'));
  });
};

export default fp(csrfPlugin, { name: 'gateway-csrf' });
