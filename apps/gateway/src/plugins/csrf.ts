/**
 * CSRF protection that stops cross-site browser requests and nothing else (docs/decisions.md, "CSRF").
 *
 * Only a write (anything but GET, HEAD, OPTIONS) that the session cookie authenticates is checked. A
 * request that sends `Authorization` is authenticated by that header and its cookie is ignored
 * (session.ts), so no cookie rule applies: a page on another site cannot make a browser add that header.
 * A cookie-authenticated write passes when the browser says it came from this site, as current browsers
 * allow it to be decided (the rules of Go 1.25's `CrossOriginProtection`):
 * 1. its `Origin` is one of CORS_ORIGINS: pass;
 * 2. it has `Sec-Fetch-Site`: pass only for `same-origin` or `none` (typed by the user);
 * 3. else, without `Origin` it did not come from a browser's cross-site request (API clients with a
 *    cookie jar: Postman, Bruno, curl): pass;
 * 4. else `Origin` must be the gateway's own (same host as the request).
 * Anything else is refused with 403 `CSRF_ORIGIN_REJECTED` before it reaches a service — except sign-up
 * and login, which the cookie does not authenticate: a stale cookie that came along is dropped there
 * (not forwarded to auth, so a foreign page cannot end the browser's session by signing in).
 */
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface CsrfOptions {
  /** Origins whose pages may make cookie-authenticated writes (CORS_ORIGINS); the gateway's own always may. */
  allowedOrigins: readonly string[];
}

/** Whether a browser request comes from this site or an allowed origin (see the rules above). */
export function fromAllowedOrigin(request: FastifyRequest, allowed: ReadonlySet<string>): boolean {
  const origin = request.headers.origin;
  if (origin !== undefined && allowed.has(origin)) return true;
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin' || site === 'none';
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === request.host;
  } catch {
    return false; // `null` and anything else that is not an origin
  }
}

const csrfPlugin: FastifyPluginAsync<CsrfOptions> = async (app, opts) => {
  const allowed = new Set(opts.allowedOrigins.map((o) => o.replace(/\/$/, '')));
  // A callback hook (no promise per request): it runs on every request, after the session is resolved.
  app.addHook('onRequest', (request, _reply, done) => {
    if (SAFE.has(request.method) || request.credential !== 'cookie') return done();
    const { signIn } = request.classification;
    if (request.caller.kind === 'anonymous' && !signIn) return done();
    if (fromAllowedOrigin(request, allowed)) return done();
    if (signIn) {
      delete request.headers.cookie;
      request.credential = null;
      request.caller = { kind: 'anonymous' };
      return done();
    }
    request.log.warn(
      { origin: request.headers.origin, site: request.headers['sec-fetch-site'] },
      'cross-site request with the session cookie refused',
    );
    done(new AppError('CSRF_ORIGIN_REJECTED'));
  });
};

export default fp(csrfPlugin, { name: 'gateway-csrf', dependencies: ['gateway-door', 'gateway-session'] });
