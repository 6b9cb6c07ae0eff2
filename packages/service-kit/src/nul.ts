/**
 * NUL characters never reach a route. PostgreSQL cannot store U+0000 in `text` (error 22021), so a NUL in
 * a slug, a query parameter or a JSON string would otherwise end as a 500, or worse, after part of a
 * request's writes. Every service refuses them before a route runs:
 * - a URL (path or query) containing `%00`: 400 `BAD_REQUEST` on `url` (a raw NUL byte never gets
 *   there: Node's HTTP parser refuses it);
 * - a JSON body with U+0000 in a string or a key: 422 `VALIDATION_FAILED` naming the field. JSON can only
 *   carry U+0000 escaped (`\u0000`; a raw NUL byte is not valid JSON), so the parsed value is walked only
 *   when the text contains `u0000` in any case — an escaped backslash before `u0000` is text, not a NUL,
 *   and the walk finds nothing.
 * Lone surrogates (`\ud800`) need no guard: pg encodes strings as UTF-8, which writes them as U+FFFD.
 */
import { AppError } from './errors.ts';

export const NUL_MESSAGE = 'must not contain NUL characters';

/** 400 for a URL that carries a percent-encoded NUL, else undefined. */
export function nulInUrl(url: string): AppError | undefined {
  return url.includes('%00') ? new AppError('BAD_REQUEST', { url: [`${NUL_MESSAGE} (%00)`] }) : undefined;
}

const MAYBE_NUL = /u0000/i;

/**
 * The field of the first string (or key) holding U+0000 in a parsed JSON value: the key it sits under
 * (the array's key for an item of an array), `body` at the top. Walked without recursion, so a body
 * nested as deep as the body limit allows cannot overflow the stack.
 */
export function nulField(value: unknown): string | undefined {
  const pending: Array<[unknown, string]> = [[value, 'body']];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [node, field] = next;
    if (typeof node === 'string') {
      if (node.includes('\0')) return field;
    } else if (Array.isArray(node)) {
      for (const item of node) pending.push([item, field]);
    } else if (node !== null && typeof node === 'object') {
      for (const [key, item] of Object.entries(node)) {
        if (key.includes('\0')) return key.replaceAll('\0', '') || field;
        pending.push([item, key]);
      }
    }
  }
  return undefined;
}

/** 422 for a parsed JSON body whose strings contain U+0000 (`text` is the body as received), else undefined. */
export function nulInJson(text: string, value: unknown): AppError | undefined {
  if (!MAYBE_NUL.test(text)) return undefined;
  const field = nulField(value);
  return field === undefined ? undefined : new AppError('VALIDATION_FAILED', { [field]: [NUL_MESSAGE] });
}
