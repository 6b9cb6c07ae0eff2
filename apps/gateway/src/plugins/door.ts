/**
 * What every request meets at the door, before anything is proxied:
 * - what the request is, decided once (classify.ts: path, route-table entry, rate-limit tier, upstream,
 *   client address, upstream timeout) and kept as `request.classification` for every later step;
 * - one spelling per path (routes/canonical.ts), checked first: a path that is not canonical is refused
 *   with 400 `NON_CANONICAL_PATH` naming the canonical one, before CORS, the session, CSRF, the rate
 *   limits, the JSON check and the proxy act on it, so they all read the same path. Refused
 *   rather than redirected (308) for every method: clients build these paths from code and browsers
 *   resolve dot segments before sending, so only crafted requests have them, and a redirect would
 *   only tell a prober how the path is read;
 * - CORS for the origins in CORS_ORIGINS only (@fastify/cors, preflight included, with credentials, the
 *   request id and rate-limit headers readable by scripts); any other origin gets no CORS headers, so a
 *   browser refuses it;
 * - security headers (helmet): for JSON a CSP that allows nothing (the API docs page gets its own, see
 *   docs/openapi.ts). Helmet's headers depend only on its options, so they are computed once here and
 *   set on every response; @fastify/helmet builds helmet's middleware again for every request, which
 *   cost several percent of the gateway's CPU under load;
 * - JSON only where JSON is expected: a request with a body to a proxied route must say
 *   `application/json` (or `+json`), else 415 — except the prefixes the route table marks `anyBody`;
 * - one access log line per request (method, path, status, duration, client address, caller).
 * The body limit (413) is Fastify's `bodyLimit` (BODY_LIMIT_BYTES); the request id on every response is
 * @atoll/service-kit's.
 */
import { AppError } from '@atoll/service-kit';
import cors from '@fastify/cors';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
import type { Classification, Classify } from '../classify.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** What the request is, decided once at the door (classify.ts). */
    classification: Classification;
  }
}

export interface DoorOptions {
  corsOrigins: readonly string[];
  classify: Classify;
}

const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

function hasBody(request: FastifyRequest): boolean {
  const length = request.headers['content-length'];
  return (length !== undefined && length !== '0') || request.headers['transfer-encoding'] !== undefined;
}

/** The headers helmet sets for these options, read once by running its middleware on a recorder. */
export function securityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader: (name: string, value: string | number) => {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as never, recorder as never, () => {});
  return headers;
}

const door: FastifyPluginAsync<DoorOptions> = async (app, opts) => {
  const security = securityHeaders({
    contentSecurityPolicy: { directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  });
  app.decorateRequest<Classification | null>('classification', null);
  // The first hook of every request (a callback: no promise per request): the security headers, what
  // the request is, and the path check, before anything else reads the path.
  app.addHook('onRequest', (request, reply, done) => {
    reply.headers(security);
    const classification = opts.classify(request.method, request.url, request.ip);
    request.classification = classification;
    const canonical = classification.nonCanonical;
    if (canonical !== null)
      return done(new AppError('NON_CANONICAL_PATH', { path: [`is not canonical, use ${canonical}`] }));
    if (classification.hiddenDotSegment)
      return done(new AppError('NON_CANONICAL_PATH', { path: ['holds /.. or ../ once decoded'] }));
    done();
  });
  await app.register(cors, {
    origin: opts.corsOrigins.length > 0 ? [...opts.corsOrigins] : false,
    credentials: true,
    methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type'],
    exposedHeaders: ['x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after'],
    maxAge: 600,
  });

  // Callback hooks (no promise per request): they run on every request.
  app.addHook('onRequest', (request, _reply, done) => {
    if (!BODY_METHODS.has(request.method) || !hasBody(request)) return done();
    if (!request.classification.expectsJson) return done();
    if (!JSON_TYPE.test(request.headers['content-type'] ?? ''))
      return done(new AppError('UNSUPPORTED_MEDIA_TYPE'));
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const caller = request.caller;
    request.log.info(
      {
        method: request.method,
        url: request.url,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime * 10) / 10,
        ip: request.ip,
        caller: caller?.kind === 'user' ? caller.identity.userId : (caller?.kind ?? 'anonymous'),
      },
      'request completed',
    );
    done();
  });
};

export default fp(door, { name: 'gateway-door' });
