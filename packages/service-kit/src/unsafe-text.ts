/**
 * Text that PostgreSQL or the code before it cannot take never reaches a route.
 *
 * NUL characters. PostgreSQL cannot store U+0000 in `text` (error 22021), so a NUL in
 * a slug, a query parameter or a JSON string would otherwise end as a 500, or worse, after part of a
 * request's writes. Every service refuses them before a route runs:
 * - a URL (path or query) containing `%00`: 400 `BAD_REQUEST` on `url` (a raw NUL byte never gets
 *   there: Node's HTTP parser refuses it);
 * - a JSON body with U+0000 in a string or a key: 422 `VALIDATION_FAILED` naming the field. JSON can only
 *   carry U+0000 escaped (`\u0000`; a raw NUL byte is not valid JSON), so the parsed value is walked only
 *   when the text contains `u0000` in any case — an escaped backslash before `u0000` is text, not a NUL,
 *   and the walk finds nothing.
 *
 * Lone surrogates (`\ud800` escaped in JSON; UTF-8 cannot carry them otherwise) are not refused: pg
 * writes them as U+FFFD. But they are not well-formed text either, and code between the parser and the
 * database may throw on them (`encodeURIComponent` does, which made content answer 500 after it had
 * created the article), so the parser replaces them by that U+FFFD right away: every route sees the
 * text that will be stored.
 *
 * Query strings that are not valid percent-encoding (`?tag=%FF`, `?q=100%`): 400 `BAD_REQUEST` on
 * `url`, as a path with the same fault already is (Fastify's router refuses it). The gateway's proxy
 * (@fastify/reply-from) decodes the whole URL and threw URIError on them, a 500.
 */
import { AppError } from './errors.ts';

export const NUL_MESSAGE = 'must not contain NUL characters';

/**
 * 400 for a URL that carries a percent-encoded NUL or a query that is not valid percent-encoding, else
 * undefined. Only a URL with a `%` in it costs more than one search.
 */
export function unsafeUrl(url: string): AppError | undefined {
  if (!url.includes('%')) return undefined;
  if (url.includes('%00')) return new AppError('BAD_REQUEST', { url: [`${NUL_MESSAGE} (%00)`] });
  const q = url.indexOf('?');
  if (q === -1 || !url.includes('%', q)) return undefined;
  try {
    decodeURIComponent(url.slice(q + 1));
    return undefined;
  } catch {
    return new AppError('BAD_REQUEST', { url: ['is not valid (malformed percent-encoding)'] });
  }
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

const MAYBE_LONE_SURROGATE = /\\u[dD][89a-fA-F]/;

/**
 * The parsed JSON value with every lone surrogate in its strings and keys replaced by U+FFFD (objects and
 * arrays changed in place; `text` is the body as received, walked only when it escapes a surrogate).
 */
export function wellFormedJson(text: string, value: unknown): unknown {
  if (!MAYBE_LONE_SURROGATE.test(text)) return value;
  if (typeof value === 'string') return value.toWellFormed();
  const pending: unknown[] = [value];
  for (let node = pending.pop(); node !== undefined; node = pending.pop()) {
    if (Array.isArray(node)) {
      node.forEach((item, i) => {
        if (typeof item === 'string') node[i] = item.toWellFormed();
        else pending.push(item);
      });
    } else if (node !== null && typeof node === 'object') {
      const target = node as Record<string, unknown>;
      for (const [key, item] of Object.entries(target)) {
        const fixed = typeof item === 'string' ? item.toWellFormed() : item;
        if (!key.isWellFormed()) {
          delete target[key];
          target[key.toWellFormed()] = fixed;
        } else if (fixed !== item) {
          target[key] = fixed;
        }
        if (typeof item === 'object') pending.push(item);
      }
    }
  }
  return value;
}
