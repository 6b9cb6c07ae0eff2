import { randomUUID } from 'node:crypto';
import { type FastifyServerOptions, LogController } from 'fastify';

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
}

export const REQUEST_ID_HEADER = 'x-request-id';

/** The Fastify options every atoll service starts from: JSON logs with the request id, bounded bodies. */
export function fastifyOptions(opts: BaseOptions): FastifyServerOptions {
  return {
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
    return503OnClosing: true,
    // Boot waits for each Redis role (5 s at most, see @atoll/redis); leave room above that.
    pluginTimeout: 30_000,
    // Keep-alive connections that are idle are closed at shutdown; busy ones finish their request.
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true },
  };
}
