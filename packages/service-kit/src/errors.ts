/**
 * One error model for every service: the RealWorld shape `{"errors": {"<field>": ["<message>"]}}`, plus a
 * stable `code` from the catalog below on atoll's own errors. 5xx bodies never carry internals.
 */
import type { ErrorObject } from 'ajv';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { describeValidationError } from './validation.ts';

export const ERROR_CATALOG = {
  VALIDATION_FAILED: { status: 422, field: 'body', message: 'is invalid' },
  MALFORMED_BODY: { status: 400, field: 'body', message: 'is not valid JSON' },
  TOKEN_MISSING: { status: 401, field: 'token', message: 'is missing' },
  IDENTITY_INVALID: { status: 401, field: 'identity', message: 'is invalid' },
  NOT_FOUND: { status: 404, field: 'route', message: 'not found' },
  PAYLOAD_TOO_LARGE: { status: 413, field: 'body', message: 'is too large' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, field: 'body', message: 'must be application/json' },
  SERVICE_UNAVAILABLE: { status: 503, field: 'service', message: 'is unavailable, try again shortly' },
  SESSION_STORE_UNAVAILABLE: {
    status: 503,
    field: 'session',
    message: 'cannot be checked right now, try again shortly',
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
  constructor(code: ErrorCode, errors?: Record<string, string[]>) {
    const entry = ERROR_CATALOG[code];
    super(`${code}: ${JSON.stringify(errors ?? { [entry.field]: [entry.message] })}`);
    this.name = 'AppError';
    this.code = code;
    this.statusCode = entry.status;
    this.errors = errors ?? { [entry.field]: [entry.message] };
  }
}

export function errorBody(code: ErrorCode, errors?: Record<string, string[]>): ErrorBody {
  const entry = ERROR_CATALOG[code];
  return { errors: errors ?? { [entry.field]: [entry.message] }, code };
}

type AnyError = FastifyError & { errors?: Record<string, string[]>; validationContext?: string };

/** Turns a schema validation failure into `{"errors": {"<field>": ["<message>"]}}`. */
function validationErrors(err: AnyError): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const v of err.validation ?? []) {
    const { field, message } = describeValidationError(v as ErrorObject);
    if (!out[field]?.includes(message)) out[field] = [...(out[field] ?? []), message];
  }
  return Object.keys(out).length > 0 ? out : { body: ['is invalid'] };
}

/** Installs the one error handler and the 404 handler of a service. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((err: AnyError, request: FastifyRequest, reply: FastifyReply) => {
    if (err.validation) {
      return reply.code(422).send({ errors: validationErrors(err) });
    }
    const status = err.statusCode ?? 500;
    // atoll's own errors carry their RealWorld body (and a catalog code), whatever the status.
    if (err.errors) {
      if (status >= 500) request.log.warn({ code: err.code, status }, err.message);
      return reply
        .code(status)
        .send({ errors: err.errors, ...(typeof err.code === 'string' ? { code: err.code } : {}) });
    }
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply.code(500).send(errorBody('INTERNAL'));
    }
    // Fastify's own 4xx errors (body too large, bad JSON, wrong content type) keep their status.
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send(errorBody('PAYLOAD_TOO_LARGE'));
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return reply.code(415).send(errorBody('UNSUPPORTED_MEDIA_TYPE'));
    return reply.code(status).send({ errors: { body: [err.message] } });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send(errorBody('NOT_FOUND')));
}
