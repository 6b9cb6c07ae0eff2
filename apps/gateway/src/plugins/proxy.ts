/**
 * Proxies every prefix of the route table to its service over undici (@fastify/reply-from), one
 * connection pool per upstream. On the way in: the body is forwarded byte for byte (bounded by the body
 * limit), hop-by-hop headers and every client-sent internal header (`x-atoll-*`, `x-request-id`) are
 * dropped, and the gateway adds its request id and a short-lived signed assertion of who is calling (or
 * that nobody is) and from which address. An upstream that is down answers 502, one that is too slow 504, both in the RealWorld shape.
 */

import { Readable } from 'node:stream';
import {
  IDENTITY_HEADER,
  INTERNAL_HEADER_PREFIX,
  SESSION_UNAVAILABLE_HEADER,
  signIdentity,
} from '@atoll/identity';
import { errorBody, REQUEST_ID_HEADER } from '@atoll/service-kit';
import replyFrom from '@fastify/reply-from';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { ROUTE_TABLE, type Upstream } from '../routes/table.ts';

/** Tells a service that the session store could not be asked (so "who is this" is unknown, not "nobody"). */

export interface ProxyOptions {
  upstreams: Record<Upstream, string>;
  timeoutMs: number;
  identitySecret: string;
}

export function forwardedHeaders(
  request: FastifyRequest,
  headers: Record<string, string | string[] | undefined>,
  identitySecret: string,
  keepCredentials: boolean,
): Record<string, string | string[] | undefined> {
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith(INTERNAL_HEADER_PREFIX) || lower === REQUEST_ID_HEADER) continue;
    // The token stays at the gateway; services get the signed assertion instead. Only auth, which owns
    // sessions (log out, the browser cookie of the OAuth flow), sees the credentials themselves.
    if (!keepCredentials && (lower === 'authorization' || lower === 'cookie')) continue;
    out[name] = value;
  }
  out[REQUEST_ID_HEADER] = request.id;
  const caller = request.caller;
  const identity = caller.kind === 'user' ? caller.identity : null;
  out[IDENTITY_HEADER] = signIdentity(identity, {
    secret: identitySecret,
    requestId: request.id,
    clientIp: request.ip,
  });
  if (caller.kind === 'unknown') out[SESSION_UNAVAILABLE_HEADER] = '1';
  return out;
}

function onUpstreamError(
  upstream: Upstream,
  reply: FastifyReply,
  error: Error & { statusCode?: number; code?: string },
): FastifyReply {
  const timedOut =
    error.statusCode === 504 || /timeout/i.test(error.code ?? '') || /timeout/i.test(error.message);
  reply.request.log.warn({ upstream, err: { message: error.message, code: error.code } }, 'upstream failed');
  if (timedOut) {
    return reply
      .code(504)
      .send(errorBody('GATEWAY_UPSTREAM_TIMEOUT', { upstream: [`${upstream} did not answer in time`] }));
  }
  return reply
    .code(502)
    .send(errorBody('GATEWAY_UPSTREAM_UNAVAILABLE', { upstream: [`${upstream} is unavailable`] }));
}

const proxyPlugin: FastifyPluginAsync<ProxyOptions> = async (app, opts) => {
  for (const upstream of Object.keys(opts.upstreams) as Upstream[]) {
    const prefixes = ROUTE_TABLE.filter((r) => r.upstream === upstream).map((r) => r.prefix);
    await app.register(async (scope) => {
      await scope.register(replyFrom, {
        base: opts.upstreams[upstream],
        undici: { connections: 128, pipelining: 1, keepAliveTimeout: 30_000, connect: { timeout: 2000 } },
        // One access log line per request is enough.
        disableRequestLogging: true,
        // No retries: reply-from otherwise repeats a GET that got a 503 up to 10 times with random
        // delays, turning a service's deliberate, immediate 503 into a second of waiting.
        retryMethods: [],
      });
      // Forward the raw bytes: the service parses and validates its own input. The body is read in full
      // first (so the body limit holds), then handed over as a stream, which reply-from sends as it is
      // with the client's own Content-Type and Content-Length (a Buffer or object would be re-encoded).
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) =>
        done(null, Readable.from([body])),
      );
      const handler = (request: FastifyRequest, reply: FastifyReply) =>
        reply.from(request.url, {
          timeout: opts.timeoutMs,
          rewriteRequestHeaders: (req, headers) =>
            forwardedHeaders(
              req as FastifyRequest,
              headers as Record<string, string | string[] | undefined>,
              opts.identitySecret,
              upstream === 'auth',
            ),
          onError: (rep, { error }) => onUpstreamError(upstream, rep as FastifyReply, error),
        });
      for (const prefix of prefixes) {
        scope.all(prefix, handler);
        scope.all(`${prefix}/*`, handler);
      }
    });
  }
};

export default proxyPlugin;
