/**
 * One spelling per path. The gateway decides by path (which service, which rate-limit tier, CSRF's
 * sign-in rule, JSON only, the upstream timeout) while Fastify's router and the services decode and
 * normalise it, so a path that two parts could read differently (`/api/users/./password-reset`,
 * `/api/users/%6cogin`, `/api/user%73`) must not get past the door: it is refused before anything
 * else looks at it, and everything after the door reads the path as it was sent (classify.ts).
 *
 * Not canonical: dot segments (`/./`, `/../`, a trailing `/.` or `/..`), empty segments (`//`),
 * percent-encoded unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`, RFC 3986 §2.3: they mean the
 * same as the character itself), backslashes (browsers read them as `/`), and `%00`. Other encodings
 * stay as they are: `%20`, `%2F` inside a slug, UTF-8 such as `%C3%A9`, in either hex case; but not a
 * dot segment that `%2F` or `%5C` hides (`hidesDotSegment`).
 */

const UNRESERVED_ENCODED = /%(?:4[1-9A-F]|5[0-9A]|6[1-9A-F]|7[0-9A]|3[0-9]|2D|2E|5F|7E)/gi;
const SUSPECT = /%(?:[2-7][0-9A-F]|00)|\\|\/\/|\/\.(?:\/|\.\/|\.?$)/i;

/** RFC 3986 §5.2.4, on a path that starts with `/`. */
function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segments = path.split('/').slice(1);
  segments.forEach((segment, i) => {
    const last = i === segments.length - 1;
    if (segment === '..') {
      if (out.length > 0) out.pop();
      if (last) out.push('');
    } else if (segment === '.') {
      if (last) out.push('');
    } else out.push(segment);
  });
  return `/${out.join('/')}`;
}

/**
 * The canonical spelling of a request path (no query string), or null when it already is canonical.
 * `%00` is dropped from the suggestion: no path of the API has it.
 */
export function canonicalPath(path: string): string | null {
  if (!SUSPECT.test(path)) return null;
  const canonical = removeDotSegments(
    path
      .replaceAll('\\', '/')
      .replaceAll('%00', '')
      .replace(UNRESERVED_ENCODED, (encoded) => String.fromCharCode(Number.parseInt(encoded.slice(1), 16)))
      .replace(/\/{2,}/g, '/'),
  );
  return canonical === path ? null : canonical;
}

/**
 * Whether a canonical path holds `/..` or `../` once percent-decoded (`/a/..%2Fb`, `/a%2F..`, `/..;/b`):
 * the proxy (@fastify/reply-from) refuses to forward such a path, by this very rule, and a service that
 * decodes `%2F` could read it as a step up. Only crafted requests have one, as with the spellings above.
 */
export function hidesDotSegment(path: string): boolean {
  if (!path.includes('..') && !/%2e/i.test(path)) return false;
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return false; // not valid percent-encoding: Fastify refuses it (400) before any route runs
  }
  return decoded === '..' || decoded.includes('/..') || decoded.includes('../');
}
