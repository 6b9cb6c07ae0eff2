/**
 * Where a sign-in may send the browser afterwards: a path on this site (`/settings`, never `//host`), or
 * an absolute URL whose origin is on the allow-list. Anything else is refused before the flow starts.
 */
export function allowedReturnTo(value: string | undefined, allowedOrigins: readonly string[]): string | null {
  const target = value ?? '/';
  if (target.startsWith('/') && !target.startsWith('//') && !target.startsWith('/\\')) {
    return /[\r\n]/.test(target) ? null : target;
  }
  try {
    const url = new URL(target);
    return allowedOrigins.includes(url.origin) ? url.toString() : null;
  } catch {
    return null;
  }
}
