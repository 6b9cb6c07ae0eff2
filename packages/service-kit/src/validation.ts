/**
 * Request validation for every service: two Ajv instances behind one validator compiler.
 * - Bodies are validated strictly (no type coercion), so `{"username": 123}` is a 422, not "123".
 * - Querystrings, params and headers arrive as text and are coerced to the schema's types (`?limit=20`).
 * Both drop properties a schema does not declare and fill in defaults.
 *
 * Error messages follow the RealWorld contract (`can't be blank`) where it has one.
 */
import { Ajv, type ErrorObject } from 'ajv';
import addFormatsPlugin from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

const addFormats = addFormatsPlugin as unknown as (ajv: Ajv) => Ajv;

function ajv(coerceTypes: boolean | 'array'): Ajv {
  return addFormats(
    new Ajv({ coerceTypes, removeAdditional: true, useDefaults: true, allErrors: true, strict: false }),
  );
}

export function installValidation(app: FastifyInstance): void {
  const strict = ajv(false);
  const coercing = ajv('array');
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema),
  );
}

/** The field an Ajv error is about, and the message a RealWorld client expects for it. */
export function describeValidationError(error: ErrorObject): { field: string; message: string } {
  const path = error.instancePath.split('/').filter(Boolean);
  const params = error.params as { missingProperty?: string; limit?: number; type?: string };
  const field = params.missingProperty ?? path[path.length - 1] ?? 'body';
  switch (error.keyword) {
    case 'required':
      return { field, message: "can't be blank" };
    case 'minLength':
      return {
        field,
        message:
          params.limit === 1 ? "can't be blank" : `is too short (minimum is ${params.limit} characters)`,
      };
    case 'maxLength':
      return { field, message: `is too long (maximum is ${params.limit} characters)` };
    case 'type':
      return { field, message: `must be ${params.type === 'integer' ? 'an integer' : `a ${params.type}`}` };
    case 'format':
    case 'pattern':
      return { field, message: 'is invalid' };
    default:
      return { field, message: error.message ?? 'is invalid' };
  }
}
