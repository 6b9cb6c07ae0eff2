/**
 * Where a sign-in may send the browser afterwards: a path on this site (`/settings`), or an absolute URL
 * whose origin is on the allow-list. Anything else is refused before the flow starts.
 *
 * A path is judged the way a browser will read it, not the way it looks: browsers drop tabs and newlines
 * from URLs, trim leading and trailing C0 controls and spaces, and read `\` as `/` in http(s) URLs, so
 * `/\t/evil.example`, `/\evil.example` and ` //evil.example` all lead to evil.example. A path is taken only
 * when it has none of those characters, does not start with `//`, and resolving it against a placeholder
 * origin keeps that origin.
 *
 * What is returned is the URL as that resolution serializes it (the WHATWG URL parser, as a browser):
 * dot segments resolved, and every character outside printable ASCII percent-encoded as UTF-8 (`/日本`
 * is `/%E6%97%A5%E6%9C%AC`). So it is always a valid `Location` header value: a raw non-Latin-1
 * character there made Node throw (a 500, after the session had been created).
 */
const PLACEHOLDER = 'http://x.invalid';

/** Has an ASCII control, the space or any other whitespace, or a backslash. */
function unsafe(target: string): boolean {
  for (const char of target) {
    const code = char.charCodeAt(0);
    if (code <= 0x20 || code === 0x7f || char === '\\' || /\s/u.test(char)) return true;
  }
  return false;
}

/** Only printable ASCII: what a header value may carry as it is. */
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

export function allowedPath(target: string): string | null {
  if (!target.startsWith('/') || target.startsWith('//')) return null;
  if (unsafe(target)) return null;
  let path: string;
  try {
    const resolved = new URL(target, PLACEHOLDER);
    if (resolved.origin !== PLACEHOLDER) return null;
    // Dot segments can leave `//` at the start of the path (`/.//evil`): a browser given that path as a
    // Location would read it as a host.
    if (resolved.pathname.startsWith('//')) return null;
    path = resolved.pathname + resolved.search + resolved.hash;
  } catch {
    return null;
  }
  return PRINTABLE_ASCII.test(path) ? path : null;
}

export function allowedReturnTo(value: string | undefined, allowedOrigins: readonly string[]): string | null {
  const target = value ?? '/';
  if (target.startsWith('/')) return allowedPath(target);
  if (unsafe(target)) return null;
  try {
    const url = new URL(target);
    if (!allowedOrigins.includes(url.origin)) return null;
    const href = url.toString();
    return PRINTABLE_ASCII.test(href) ? href : null;
  } catch {
    return null;
  }
}
