import { randomUUID } from 'node:crypto';
import { type IncomingMessage, type Server, type ServerResponse, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import { DEFAULT_TIMEOUTS, type ServerTimeouts } from '@atoll/config';
import {
  type FastifyError,
  type FastifyHttpOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { ERROR_CATALOG, type ErrorCode, errorBody, frameworkErrorBody } from './errors.ts';

export interface BaseOptions {
  service: string;
  logLevel: string;
  /**
   * `gateway`: always assigns a fresh request id (a client cannot choose it).
   * `internal`: takes the id the gateway forwards in `x-request-id`, or assigns one when called directly.
   */
  requestIds: 'gateway' | 'internal';
  bodyLimit?: number;
  /**
   * Addresses or CIDRs of proxies whose `X-Forwarded-For` is believed (`request.ip` is then the client
   * they name); empty or unset: the peer address is the client, whatever headers say.
   */
  trustedProxies?: readonly string[];
  /** The service logs one line per request itself (the gateway's access log) instead of Fastify's two. */
  ownAccessLog?: boolean;
  /** The server's timeouts (`serviceConfig(env).timeouts`); unset: DEFAULT_TIMEOUTS. */
  timeouts?: ServerTimeouts;
}

export const REQUEST_ID_HEADER = 'x-request-id';

/**
 * The longest path parameter the router matches (an article slug, a percent-encoded username); longer is
 * a 414. Fastify's default, 100, turned away a username of 17 non-ASCII letters (`%C3%BC` is one).
 */
export const MAX_PARAM_LENGTH = 1000;

/**
 * Errors the router meets before any route or hook runs: a path that is not valid percent-encoding (400)
 * and a path parameter over MAX_PARAM_LENGTH (414), in the RealWorld shape with the request id.
 */
function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.statusCode ?? 500;
  if (status >= 500) request.log.error({ err: error }, 'request failed before routing');
  reply
    .code(status)
    .header(REQUEST_ID_HEADER, request.id)
    .send(status >= 500 ? errorBody('INTERNAL') : frameworkErrorBody(error, status));
}

/** A whole raw HTTP response for a connection that is closed after it. */
function rawResponse(code: ErrorCode, errors?: Record<string, string[]>): string {
  const { status } = ERROR_CATALOG[code];
  const body = JSON.stringify(errorBody(code, errors));
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'Connection: close\r\n\r\n' +
    body
  );
}

const CLIENT_ERROR_RESPONSES: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: rawResponse('HEADERS_TOO_LARGE'),
  HPE_CHUNK_EXTENSIONS_OVERFLOW: rawResponse('PAYLOAD_TOO_LARGE', {
    body: ['has chunk extensions that are too large'],
  }),
  ERR_HTTP_REQUEST_TIMEOUT: rawResponse('REQUEST_TIMEOUT'),
  HPE_INVALID_METHOD: rawResponse('BAD_REQUEST', { method: ['is not an HTTP method'] }),
};
const BAD_REQUEST_RESPONSE = rawResponse('BAD_REQUEST');

/**
 * An `Expect` other than `100-continue`: 417 in the RealWorld shape (Node's own answer has no body), and
 * the connection closes, since the body the client holds back never comes. For `server.on('checkExpectation')`.
 */
export function refuseExpectation(_request: IncomingMessage, response: ServerResponse): void {
  const body = JSON.stringify(errorBody('EXPECTATION_FAILED'));
  response.writeHead(417, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  response.end(body);
}

/**
 * `CONNECT` (a tunnel request, which Node hands to `server.on('connect')` and otherwise answers by
 * closing the connection): 405 in the RealWorld shape, then the connection closes.
 */
export function refuseConnect(_request: IncomingMessage, socket: Socket): void {
  socket.on('error', () => {});
  socket.end(rawResponse('METHOD_NOT_ALLOWED', { method: ['CONNECT is not served here'] }));
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request (headers over 16 KB, the request line
 * included; a method it does not know; broken framing; a request that takes too long to arrive): a
 * RealWorld error body with its own Content-Type and Content-Length, then the connection is closed.
 */
function clientErrorHandler(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
  // A reset connection, or one this handler already answered (the parser reports again on more data).
  if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return;
  this.log.debug({ err: { code: err.code, message: err.message } }, 'client error');
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.end(CLIENT_ERROR_RESPONSES[err.code ?? ''] ?? BAD_REQUEST_RESPONSE);
  socket.destroySoon();
}

/**
 * Node's server options for the timeouts. Node checks for requests over their time only every
 * `connectionsCheckingInterval` (30 s by default, which would let a slow client hold a request for up to
 * twice REQUEST_TIMEOUT_MS): a tenth of the timeout, within 100 ms and 5 s. The headers' own timeout may
 * not exceed the request's (Node refuses it), and is Node's 60 s otherwise.
 */
function serverTimeouts({ requestMs }: ServerTimeouts) {
  return {
    requestTimeout: requestMs,
    headersTimeout: Math.min(requestMs, 60_000),
    connectionsCheckingInterval: Math.min(5000, Math.max(100, Math.floor(requestMs / 10))),
  };
}

/**
 * The Fastify options every atoll service starts from: JSON logs with the request id, bounded bodies, and
 * bounded time: a request must arrive whole within `requestMs` (else 408 and the connection closes; a
 * long-lived response such as a live stream is not a request still arriving, so it is not cut), a
 * connection in the middle of a request that carries no byte for `connectionMs` is closed, and an idle
 * keep-alive connection after `keepAliveMs`.
 */
export function fastifyOptions(opts: BaseOptions): FastifyHttpOptions<Server> {
  const timeouts = opts.timeouts ?? DEFAULT_TIMEOUTS;
  return {
    requestTimeout: timeouts.requestMs,
    connectionTimeout: timeouts.connectionMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    // A request without Host is refused by the base plugin, in the RealWorld shape; Node's own refusal
    // has no body.
    http: { ...serverTimeouts(timeouts), requireHostHeader: false },
    logger: {
      level: opts.logLevel,
      base: { service: opts.service },
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', 'req.headers["x-atoll-identity"]'],
        censor: '[redacted]',
      },
    },
    requestIdHeader: opts.requestIds === 'internal' ? REQUEST_ID_HEADER : false,
    logController: new LogController({
      requestIdLogLabel: 'reqId',
      disableRequestLogging: opts.ownAccessLog ?? false,
    }),
    genReqId: () => randomUUID(),
    bodyLimit: opts.bodyLimit ?? 256 * 1024,
    trustProxy: opts.trustedProxies?.length ? [...opts.trustedProxies] : false,
    // A request that arrives while the server closes (on a keep-alive connection that was busy when
    // closing began) is served, with `Connection: close`: Fastify's 503 would reach the client through
    // the gateway as a failure, and nothing is closed yet (Redis and PostgreSQL close after the server).
    return503OnClosing: false,
    // Boot waits for each Redis role (5 s at most, see @atoll/redis); leave room above that.
    pluginTimeout: 30_000,
    // Keep-alive connections that are idle are closed at shutdown; busy ones finish their request and
    // close with its response.
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    // Errors before any route runs, in the RealWorld shape like every other.
    frameworkErrors,
    clientErrorHandler,
  };
}
