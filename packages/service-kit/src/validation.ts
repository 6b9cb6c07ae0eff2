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

/** `a string`, `an integer`, `null`: a JSON type as an error message names it. */
function typeName(type: string): string {
  if (type === 'null') return 'null';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

/**
 * The field an Ajv error is about: the property it is missing, or the last property on its path. An item
 * of an array is its array's (`/article/tagList/3` is `tagList`), as a client names the field it sent.
 */
function fieldOf(error: ErrorObject): string {
  const missing = (error.params as { missingProperty?: string }).missingProperty;
  if (missing) return missing;
  const path = error.instancePath
    .split('/')
    .filter(Boolean)
    .map((part) => part.replaceAll('~1', '/').replaceAll('~0', '~'));
  return path.findLast((part) => !/^\d+$/.test(part)) ?? 'body';
}

/** The field an Ajv error is about, and the message a RealWorld client expects for it. */
export function describeValidationError(error: ErrorObject): { field: string; message: string } {
  const field = fieldOf(error);
  const params = error.params as { limit?: number; type?: string };
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
      return { field, message: `must be ${String(params.type).split(',').map(typeName).join(' or ')}` };
    case 'format':
    case 'pattern':
      return { field, message: 'is invalid' };
    default:
      return { field, message: error.message ?? 'is invalid' };
  }
}

/**
 * Every error of one validation, as fields and messages. A field that may be one of several schemas
 * (`anyOf`, e.g. a string or null) fails every branch; what it says is the complaint of a branch whose
 * type matched (`is too long`), or when none did, the types it may have (`must be a string or null`),
 * not one message per branch and another for the `anyOf`.
 */
export function describeValidationErrors(errors: ErrorObject[]): Array<{ field: string; message: string }> {
  const anyOfs = errors.filter((e) => e.keyword === 'anyOf');
  const inBranch = (e: ErrorObject) => anyOfs.some((a) => e.schemaPath.startsWith(`${a.schemaPath}/`));
  const out = errors.filter((e) => e.keyword !== 'anyOf' && !inBranch(e)).map(describeValidationError);
  for (const anyOf of anyOfs) {
    const branches = errors.filter((e) => e.schemaPath.startsWith(`${anyOf.schemaPath}/`));
    const past = branches.filter((e) => e.keyword !== 'type');
    if (past.length > 0) out.push(...past.map(describeValidationError));
    else {
      const types = branches.flatMap((e) => String((e.params as { type?: string }).type).split(','));
      out.push({
        field: fieldOf(anyOf),
        message:
          types.length > 0 ? `must be ${[...new Set(types)].map(typeName).join(' or ')}` : 'is invalid',
      });
    }
  }
  return out;
}
