/**
 * Proxies every prefix of the route table to its service over undici (@fastify/reply-from), one
 * connection pool per instance. A service may run as several instances (AUTH_URL, CONTENT_URL and
 * NOTIFIER_URL list them): each request goes to the next in turn, and an attempt that fails before any
 * response came back goes to another instance when the service cannot have seen it (any method) or when
 * seeing it twice does no harm (GET, HEAD, OPTIONS), within the request's one time budget
 * (upstream-pool.ts has the rules); so a service instance that drains and restarts costs no request. On
 * the way in: the body is forwarded byte for byte (bounded by the body
 * limit), hop-by-hop headers (both ways) and every client-sent internal header (`x-atoll-*`, `x-request-id`) are
 * dropped, and the gateway adds its request id and a short-lived signed assertion of who is calling (or
 * that nobody is, or that the session store could not say) and from which address, bound to the upstream,
 * the method, the request target and the request id (routes/assertion.ts). An upstream that is down
 * answers 502, one that is too slow 504 (after UPSTREAM_TIMEOUT_MS, or the route's own timeout from
 * UPSTREAM_ROUTE_TIMEOUTS), both in the RealWorld shape and counted on /metrics. The proxied routes are
 * hidden from the gateway's own OpenAPI document: the services describe them. On the way out, a service's
 * `Server-Timing` reaches the client only when the gateway's SERVER_TIMING is set too (off by default:
 * query counts are a hint for an attacker), so one service configured for development cannot leak it.
 */

import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import { type BatchingSigner, IDENTITY_HEADER, INTERNAL_HEADER_PREFIX } from '@atoll/identity';
import { Counter, DRAINING_HEADER, errorBody, REQUEST_ID_HEADER, type Registry } from '@atoll/service-kit';
import replyFrom from '@fastify/reply-from';
// `schema.hide` is typed by @fastify/swagger's augmentation (the plugin is registered by @atoll/service-kit).
import type {} from '@fastify/swagger';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { assertionFor } from '../routes/assertion.ts';
import { ROUTE_TABLE, type Upstream } from '../routes/table.ts';
import {
  failureKind,
  isUnreachable,
  mayRetry,
  rootCause,
  type UpstreamError,
  type UpstreamPool,
} from './upstream-pool.ts';

export interface ProxyOptions {
  /** Each service's instances (upstream-pool.ts). */
  pools: Record<Upstream, UpstreamPool>;
  signer: BatchingSigner;
  registry: Registry;
  /** Let the services' Server-Timing through (SERVER_TIMING); else it is dropped. */
  serverTiming: boolean;
}

/**
 * Headers about one connection (RFC 9110, 7.6.1), which a proxy must not pass on, in either direction
 * (reply-from drops only `Connection` and what it names). Sent on, undici refuses `Expect`, `Keep-Alive`
 * and `Upgrade` outright (the request would end as a 502), and a service's `Connection: keep-alive`
 * would keep a client's connection open that asked for `Connection: close`. The gateway already
 * answered `Expect: 100-continue` itself (Node does), and it reads the whole body before sending it on.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'expect',
]);

/** The headers a service receives: the client's, less the internal ones, plus the request id and `assertion`. */
export function forwardedHeaders(
  request: FastifyRequest,
  headers: Record<string, string | string[] | undefined>,
  assertion: string,
  upstream: Upstream,
): Record<string, string | string[] | undefined> {
  const keepCredentials = upstream === 'auth';
  const out: Record<string, string | string[] | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (lower.startsWith(INTERNAL_HEADER_PREFIX) || lower === REQUEST_ID_HEADER || HOP_BY_HOP.has(lower))
      continue;
    // The token stays at the gateway; services get the signed assertion instead. Only auth, which owns
    // sessions (log out, the browser cookie of the OAuth flow), sees the credentials themselves.
    if (!keepCredentials && (lower === 'authorization' || lower === 'cookie')) continue;
    out[name] = value;
  }
  out[REQUEST_ID_HEADER] = request.id;
  out[IDENTITY_HEADER] = assertion;
  return out;
}

function onUpstreamError(
  upstream: Upstream,
  reply: FastifyReply,
  error: Error & { statusCode?: number; code?: string },
  errors: Counter<'upstream' | 'kind'>,
): FastifyReply {
  const timedOut =
    error.statusCode === 504 || /timeout/i.test(error.code ?? '') || /timeout/i.test(error.message);
  errors.inc({ upstream, kind: timedOut ? 'timeout' : 'unavailable' });
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

/** The request's body bytes, kept beside the stream that forwards them, to send them again. */
const BODY_BYTES = Symbol('bodyBytes');
type ForwardedBody = Readable & { [BODY_BYTES]: Buffer };

function forwardedBody(bytes: Buffer): ForwardedBody {
  return Object.assign(Readable.from([bytes]), { [BODY_BYTES]: bytes });
}

/** A fresh stream of the same bytes for another attempt (the last one consumed its stream). */
function rewindBody(request: FastifyRequest): void {
  const body = request.body as Partial<ForwardedBody> | undefined;
  const bytes = body?.[BODY_BYTES];
  if (bytes) request.body = forwardedBody(bytes);
}

/**
 * How long a new connection to an instance may take, its name lookup included. An instance that refuses
 * is known at once; this bounds one that does not answer. 3 s: in containers a lookup whose query was lost
 * is asked again after 1 s (deploy/README.md#name-lookups-under-podman), and two such took 2 s.
 */
const UPSTREAM_CONNECT_TIMEOUT_MS = 3000;

const proxyPlugin: FastifyPluginAsync<ProxyOptions> = async (app, opts) => {
  const errors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Proxied requests answered 502 (unavailable) or 504 (timeout), by upstream',
    labelNames: ['upstream', 'kind'] as const,
    registers: [opts.registry],
  });
  const retries = new Counter({
    name: 'gateway_upstream_retries_total',
    help: 'Proxied requests sent again to another instance after an attempt failed, by upstream and by whether the failed instance could have seen the request (unsent, sent)',
    labelNames: ['upstream', 'kind'] as const,
    registers: [opts.registry],
  });
  for (const upstream of Object.keys(opts.pools) as Upstream[]) {
    const prefixes = ROUTE_TABLE.filter((r) => r.upstream === upstream).map((r) => r.prefix);
    const pool = opts.pools[upstream];
    await app.register(async (scope) => {
      // No base: each attempt names its instance (getUpstream), and undici keeps a pool of connections
      // per instance.
      await scope.register(replyFrom, {
        undici: {
          connections: 128,
          pipelining: 1,
          keepAliveTimeout: 30_000,
          connect: { timeout: UPSTREAM_CONNECT_TIMEOUT_MS },
        },
        // One access log line per request is enough.
        disableRequestLogging: true,
        // No retries of its own: reply-from otherwise repeats a GET that got a 503 up to 10 times with
        // random delays, turning a service's deliberate, immediate 503 into a second of waiting. The
        // handler below sends a failed attempt to another instance instead (upstream-pool.ts).
        retryMethods: [],
      });
      // Forward the raw bytes: the service parses and validates its own input. The body is read in full
      // first (so the body limit holds), then handed over as a stream, which reply-from sends as it is
      // with the client's own Content-Type and Content-Length (a Buffer or object would be re-encoded);
      // the bytes stay beside it for another attempt.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) =>
        done(null, forwardedBody(body as Buffer)),
      );
      const handler = async (request: FastifyRequest, reply: FastifyReply) => {
        // One time budget for all attempts (the route's timeout, classify.ts).
        const deadline = Date.now() + request.classification.timeoutMs;
        // reply-from refuses a source that holds `/..` or `../` once decoded, its query included; in a
        // query it is data (a tag `../x`), so the query goes beside the path, as the target has it. The
        // door refused such a path already (classify.ts `hiddenDotSegment`).
        const { target } = request.classification;
        const q = target.indexOf('?');
        const source = q > 0 && q < target.length - 1 ? target.slice(0, q) : request.url;
        const query = source === request.url ? {} : { queryString: () => target.slice(q + 1) };
        const tried = new Set<string>();
        const attempt = async (): Promise<void> => {
          // Every attempt carries an assertion of its own, bound to the target the service receives,
          // worked out once at the door (classify.ts).
          const assertion = await assertionFor(
            opts.signer,
            request,
            upstream,
            request.method,
            request.classification.target,
          );
          const instance = pool.pick(tried) as string;
          if (tried.size > 0) rewindBody(request);
          tried.add(instance);
          reply.from(source, {
            ...query,
            getUpstream: () => instance,
            timeout: Math.max(1, deadline - Date.now()),
            rewriteRequestHeaders: (req, headers) =>
              forwardedHeaders(
                req as FastifyRequest,
                headers as Record<string, string | string[] | undefined>,
                assertion,
                upstream,
              ),
            onError: (rep, { error }) => {
              const failure = error as Error & UpstreamError & { statusCode?: number };
              if (isUnreachable(failure)) pool.markUnreachable(instance);
              const kind = failureKind(failure);
              const again =
                !rep.sent &&
                !request.socket.destroyed &&
                tried.size < pool.maxAttempts &&
                mayRetry(kind, request.method);
              if (again) {
                retries.inc({ upstream, kind });
                rep.request.log.info(
                  { upstream, kind, err: { message: failure.message, code: rootCause(failure).code } },
                  'upstream attempt failed, sending to another instance',
                );
                return void attempt().catch((err: Error) => reply.send(err));
              }
              return onUpstreamError(upstream, rep as FastifyReply, failure, errors);
            },
            // A draining instance says so on every response: send it nothing new for a while, so it
            // has no traffic left when it closes its connections (no keep-alive race to retry). Any
            // other answer means the instance is back, if it was skipped.
            rewriteHeaders: (headers: IncomingHttpHeaders) => {
              if (headers[DRAINING_HEADER] !== undefined) {
                pool.markDraining(instance);
                delete headers[DRAINING_HEADER];
              } else pool.markReachable(instance);
              if (!opts.serverTiming) delete headers['server-timing'];
              for (const name of Object.keys(headers)) if (HOP_BY_HOP.has(name)) delete headers[name];
              return headers;
            },
          });
        };
        await attempt();
        return reply;
      };
      const hidden = { schema: { hide: true } };
      for (const prefix of prefixes) {
        scope.all(prefix, hidden, handler);
        scope.all(`${prefix}/*`, hidden, handler);
      }
    });
  }
};

export default proxyPlugin;
