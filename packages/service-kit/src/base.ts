import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { dropEmptyBodyType, installJsonParser } from './body.ts';
import { AppError, type ErrorHandlingOptions, installErrorHandling } from './errors.ts';
import { REQUEST_ID_HEADER, refuseConnect, refuseExpectation } from './fastify-options.ts';
import health from './health.ts';
import { type MetricsOptions, metrics } from './metrics.ts';
import { openApi } from './openapi.ts';
import { unsafeUrl } from './unsafe-text.ts';
import { installValidation } from './validation.ts';

export interface BasePluginOptions extends ErrorHandlingOptions {
  /** The service's name, on its metrics and in its OpenAPI document. */
  service?: string;
  /** The bearer token of `GET /metrics`; without one the route is not served. */
  metricsToken?: string | null;
  /**
   * Serve the OpenAPI document at `/internal/openapi.json` (default true). The gateway, whose port is
   * public, does not: it merges its own document into `/api/openapi.json` instead.
   */
  internalOpenApi?: boolean;
  /** More metrics for this service (see metrics.ts). */
  collectors?: MetricsOptions['collectors'];
}

/**
 * The longest URL (path and query) a service takes: longer is a 414. Node's parser refuses more than
 * 16 KB of request line and headers together (431), so this leaves room for the headers.
 */
export const MAX_URL_LENGTH = 8 * 1024;

/** On every response of an instance that drains: the gateway sends it no new request for a while. */
export const DRAINING_HEADER = 'x-atoll-draining';

/**
 * What every service registers first: validation (strict bodies), the error handler and 404 in the
 * RealWorld shape, a JSON parser for which an empty body is no body (body.ts), URLs over MAX_URL_LENGTH
 * answered 414, NUL characters in URLs (400) and in JSON bodies (422) and malformed query strings
 * (400) refused (unsafe-text.ts), the OpenAPI document of its routes (internal), request metrics and
 * `GET /metrics`,
 * the health routes, the request id echoed on every response (so a client can quote it in a bug
 * report), and connections that end with their last response once shutdown (draining) has begun.
 */
const basePlugin: FastifyPluginAsync<BasePluginOptions> = async (app, opts) => {
  const service = opts.service ?? 'service';
  installValidation(app);
  installErrorHandling(app, opts);
  installJsonParser(app);
  // Before any route, so that every route is described and measured.
  await app.register(openApi, { service, serve: opts.internalOpenApi ?? true });
  await app.register(metrics, { service, token: opts.metricsToken, collectors: opts.collectors ?? [] });
  await app.register(health);
  // Hooks on every request are written with callbacks rather than async functions: no promise per call.
  app.server.on('checkExpectation', refuseExpectation);
  app.server.on('connect', refuseConnect);
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    // HTTP/1.1 requires Host (Node's check is off: its 400 has no body).
    if (request.raw.headers.host === undefined && request.raw.httpVersion === '1.1') {
      reply.header('connection', 'close');
      return done(new AppError('BAD_REQUEST', { host: ["can't be blank"] }));
    }
    if (request.url.length > MAX_URL_LENGTH) return done(new AppError('URI_TOO_LONG'));
    // A NUL in a path or query value, or a query that is not valid percent-encoding: 400 (unsafe-text.ts).
    const unsafe = unsafeUrl(request.url);
    if (unsafe) return done(unsafe);
    // Before Fastify picks a body parser: an empty body is no body, whatever the Content-Type says.
    dropEmptyBodyType(request.raw.headers);
    done();
  });
  // Graceful shutdown: once draining has begun (health.drain(), or closing), every response carries
  // `Connection: close`, so each keep-alive connection ends with its current response instead of being
  // reused for a request the server would have to refuse or cut.
  // `x-atoll-draining` tells the gateway to send this instance nothing new (it never reaches clients).
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (app.health.draining) reply.header('connection', 'close').header(DRAINING_HEADER, '1');
    done(null, payload);
  });
};

export default fp(basePlugin, { name: '@atoll/base', fastify: '5.x' });
