/**
 * One error model for every service: the RealWorld shape `{"errors": {"<field>": ["<message>"]}}`, plus a
 * stable `code` from the catalog below, on atoll's own errors and on those Fastify raises (bad JSON, body
 * too large, ...; what the router and Node's parser refuse is in fastify-options.ts). 5xx bodies never
 * carry internals.
 */

import { isDatabaseUnavailable } from '@atoll/db/unavailable';
import { isRedisUnavailable } from '@atoll/redis';
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeValidationErrors } from './validation.ts';

export const ERROR_CATALOG = {
  VALIDATION_FAILED: { status: 422, field: 'body', message: 'is invalid' },
  MALFORMED_BODY: { status: 400, field: 'body', message: 'is not valid JSON' },
  BAD_REQUEST: { status: 400, field: 'request', message: 'is not valid HTTP' },
  REQUEST_TIMEOUT: { status: 408, field: 'request', message: 'did not arrive in time' },
  EXPECTATION_FAILED: { status: 417, field: 'expect', message: 'can only be 100-continue' },
  URI_TOO_LONG: { status: 414, field: 'url', message: 'is too long' },
  NON_CANONICAL_PATH: { status: 400, field: 'path', message: 'is not canonical' },
  HEADERS_TOO_LARGE: {
    status: 431,
    field: 'headers',
    message: 'are too large (the URL and the headers together must fit in 16 KB)',
  },
  TOKEN_MISSING: { status: 401, field: 'token', message: 'is missing' },
  IDENTITY_MISSING: { status: 401, field: 'identity', message: 'is missing' },
  IDENTITY_INVALID: { status: 401, field: 'identity', message: 'is invalid' },
  NOT_FOUND: { status: 404, field: 'route', message: 'not found' },
  METHOD_NOT_ALLOWED: { status: 405, field: 'method', message: 'is not allowed here' },
  PAYLOAD_TOO_LARGE: { status: 413, field: 'body', message: 'is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, field: 'body', message: 'must be application/json' },
  SERVICE_UNAVAILABLE: { status: 503, field: 'service', message: 'is unavailable, try again shortly' },
  DATABASE_UNAVAILABLE: { status: 503, field: 'database', message: 'is unavailable, try again shortly' },
  QUEUE_UNAVAILABLE: {
    status: 503,
    field: 'queue',
    message: 'is unavailable, nothing was sent; try again shortly',
  },
  REDIS_UNAVAILABLE: { status: 503, field: 'service', message: 'is unavailable, try again shortly' },
  AUTH_INVALID_CREDENTIALS: { status: 401, field: 'credentials', message: 'invalid' },
  AUTH_REAUTHENTICATION_REQUIRED: {
    status: 401,
    field: 'currentPassword',
    message: 'is required to change the email or password (or sign in again)',
  },
  AUTH_TOO_MANY_ATTEMPTS: {
    status: 429,
    field: 'login',
    message: 'too many failed attempts, try again later',
  },
  AUTH_TOO_MANY_PASSWORD_CHANGES: {
    status: 429,
    field: 'password',
    message: 'was changed too often, try again later',
  },
  AUTH_TOO_MANY_REGISTRATIONS: {
    status: 429,
    field: 'user',
    message: 'too many sign-ups from this address, try again later',
  },
  AUTH_HASHING_BUSY: {
    status: 503,
    field: 'password',
    message: 'checks are busy right now, try again shortly',
  },
  OAUTH_NOT_CONFIGURED: { status: 404, field: 'google', message: 'sign-in is not configured' },
  OAUTH_STATE_INVALID: { status: 400, field: 'state', message: 'is invalid or has expired, start again' },
  OAUTH_PROVIDER_ERROR: { status: 400, field: 'google', message: 'sign-in could not be verified' },
  OAUTH_PROVIDER_UNAVAILABLE: { status: 503, field: 'google', message: 'is unavailable, try again shortly' },
  CONFLICT: { status: 409, field: 'body', message: 'has already been taken' },
  FORBIDDEN: { status: 403, field: 'resource', message: 'forbidden' },
  CSRF_ORIGIN_REJECTED: { status: 403, field: 'origin', message: 'is not allowed to use the session cookie' },
  SESSION_STORE_UNAVAILABLE: {
    status: 503,
    field: 'session',
    message: 'cannot be checked right now, try again shortly',
  },
  METRICS_UNAUTHORIZED: { status: 401, field: 'metrics', message: 'need the metrics bearer token' },
  INTERNAL_UNAUTHORIZED: { status: 401, field: 'internal', message: 'need the internal bearer token' },
  RATE_LIMITED: { status: 429, field: 'rate', message: 'too many requests, try again later' },
  STREAMS_TOO_MANY: {
    status: 429,
    field: 'stream',
    message: 'too many live streams from this address, try again later',
  },
  STREAMS_UNAVAILABLE: {
    status: 503,
    field: 'stream',
    message: 'this server holds as many live streams as it can, try again shortly',
  },
  RATE_LIMIT_UNAVAILABLE: {
    status: 503,
    field: 'rate',
    message: 'limits cannot be checked right now, try again shortly',
  },
  GATEWAY_UPSTREAM_UNAVAILABLE: { status: 502, field: 'upstream', message: 'is unavailable' },
  GATEWAY_UPSTREAM_TIMEOUT: { status: 504, field: 'upstream', message: 'did not answer in time' },
  INTERNAL: { status: 500, field: 'server', message: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CATALOG;

export interface ErrorBody {
  errors: Record<string, string[]>;
  code?: string;
}

export class AppError extends Error {
  readonly statusCode: number;
  readonly code: ErrorCode;
  readonly errors: Record<string, string[]>;
  /** Response headers that belong to the error, e.g. Retry-After on a 429. */
  readonly headers: Record<string, string>;
  constructor(
    code: ErrorCode,
    errors?: Record<string, string[]>,
    headers: Record<string, string> = {},
    cause?: unknown,
  ) {
    const entry = ERROR_CATALOG[code];
    super(`${code}: ${JSON.stringify(errors ?? { [entry.field]: [entry.message] })}`, { cause });
    this.name = 'AppError';
    this.code = code;
    this.statusCode = entry.status;
    this.errors = errors ?? { [entry.field]: [entry.message] };
    this.headers = headers;
  }
}

export function errorBody(code: ErrorCode, errors?: Record<string, string[]>): ErrorBody {
  const entry = ERROR_CATALOG[code];
  return { errors: errors ?? { [entry.field]: [entry.message] }, code };
}

type AnyError = FastifyError & { errors?: unknown; validationContext?: string };

/** Turns a schema validation failure into `{"errors": {"<field>": ["<message>"]}}`. */
function validationErrors(err: AnyError, request: FastifyRequest): Record<string, string[]> {
  // No body at all where the route needs one (an empty request with or without a Content-Type).
  if (err.validationContext === 'body' && request.body === undefined) return { body: ["can't be blank"] };
  const out: Record<string, string[]> = {};
  for (const { field, message } of describeValidationErrors((err.validation ?? []) as ErrorObject[])) {
    if (!out[field]?.includes(message)) out[field] = [...(out[field] ?? []), message];
  }
  return Object.keys(out).length > 0 ? out : { body: ['is invalid'] };
}

/** The catalog code of an error Fastify or Node raised before a route ran, by its status. */
const CODE_BY_STATUS: Readonly<Record<number, ErrorCode>> = {
  400: 'BAD_REQUEST',
  404: 'NOT_FOUND',
  408: 'REQUEST_TIMEOUT',
  413: 'PAYLOAD_TOO_LARGE',
  414: 'URI_TOO_LONG',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  431: 'HEADERS_TOO_LARGE',
};

const codeForStatus = (status: number): ErrorCode =>
  status >= 500 ? 'INTERNAL' : (CODE_BY_STATUS[status] ?? 'BAD_REQUEST');

/** Fastify's own errors that have a body of their own in the catalog. */
const FASTIFY_ERRORS: Readonly<Record<string, ErrorBody>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: errorBody('PAYLOAD_TOO_LARGE'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: errorBody('UNSUPPORTED_MEDIA_TYPE'),
  FST_ERR_CTP_INVALID_JSON_BODY: errorBody('MALFORMED_BODY'),
  FST_ERR_CTP_EMPTY_JSON_BODY: errorBody('MALFORMED_BODY'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: errorBody('BAD_REQUEST', {
    body: ['does not match its Content-Length'],
  }),
  FST_ERR_BAD_URL: errorBody('BAD_REQUEST', { url: ['is not valid (malformed percent-encoding)'] }),
  FST_ERR_MAX_PARAM_LENGTH: errorBody('URI_TOO_LONG', { url: ['has a path segment that is too long'] }),
};

/**
 * The RealWorld body of an error Fastify raised before a route ran (bad JSON, wrong content type, body
 * too large, bad URL, ...): its catalog entry, else its message under a code chosen by its status.
 */
export function frameworkErrorBody(err: { code?: string; message: string }, status: number): ErrorBody {
  const known = err.code === undefined ? undefined : FASTIFY_ERRORS[err.code];
  if (known) return known;
  return { errors: { request: [err.message] }, code: codeForStatus(status) };
}

const isFieldErrors = (errors: unknown): errors is Record<string, string[]> =>
  typeof errors === 'object' && errors !== null && !Array.isArray(errors);

export interface ErrorHandlingOptions {
  /**
   * The code to answer when a Redis server cannot be reached. A service that uses Redis for one thing on
   * its request paths names it (auth: `SESSION_STORE_UNAVAILABLE`); the default is `REDIS_UNAVAILABLE`.
   */
  redisUnavailable?: ErrorCode;
}

/** Installs the one error handler and the 404 handler of a service. */
export function installErrorHandling(app: FastifyInstance, opts: ErrorHandlingOptions = {}): void {
  app.setErrorHandler((err: AnyError, request: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return reply.code(422).send({ errors: validationErrors(err, request), code: 'VALIDATION_FAILED' });
    }
    // The client closed its connection while its body was arriving (Node's `aborted`, an ECONNRESET like
    // a database's): nobody is left to answer, and nothing is down.
    if (err.message === 'aborted' && request.raw.readableAborted) {
      request.log.info('client closed the connection before its request had arrived');
      return reply
        .code(400)
        .send(errorBody('BAD_REQUEST', { body: ['was cut short: the connection closed'] }));
    }
    // A dependency that is down is a 503 with a code saying which, never a 500.
    if (isRedisUnavailable(err)) {
      request.log.warn({ err: { message: err.message } }, 'redis unavailable');
      return reply.code(503).send(errorBody(opts.redisUnavailable ?? 'REDIS_UNAVAILABLE'));
    }
    if (isDatabaseUnavailable(err)) {
      request.log.warn({ err: { message: err.message } }, 'database unavailable');
      return reply.code(503).send(errorBody('DATABASE_UNAVAILABLE'));
    }
    const status = err.statusCode ?? 500;
    // atoll's own errors carry their RealWorld body (and a catalog code), whatever the status.
    if (isFieldErrors(err.errors)) {
      if (err instanceof AppError) reply.headers(err.headers);
      if (status >= 500 || err.cause) {
        const cause =
          err.cause instanceof Error ? { message: err.cause.message, name: err.cause.name } : err.cause;
        request.log.warn({ code: err.code, status, cause }, err.message);
      }
      const code = typeof err.code === 'string' ? err.code : codeForStatus(status);
      return reply.code(status).send({ errors: err.errors, code });
    }
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.code(500).send(errorBody('INTERNAL'));
    }
    // Fastify's own 4xx errors (body too large, bad JSON, wrong content type) keep their status.
    return reply.code(status).send(frameworkErrorBody(err, status));
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(errorBody('NOT_FOUND')));
}
