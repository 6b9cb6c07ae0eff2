/**
 * The gateway's route table: which service owns which public path prefix. A prefix matches itself and
 * everything below it (`/api/articles` matches `/api/articles/how-to/comments`). Order does not matter:
 * prefixes never overlap. Bodies sent to a prefix must be JSON (415 otherwise) unless it says `anyBody`.
 */
export type Upstream = 'auth' | 'content' | 'notifier';

export const ROUTE_TABLE: ReadonlyArray<{ prefix: string; upstream: Upstream; anyBody?: boolean }> = [
  { prefix: '/api/users', upstream: 'auth' },
  { prefix: '/api/user', upstream: 'auth' },
  { prefix: '/api/auth', upstream: 'auth' },
  { prefix: '/api/profiles', upstream: 'content' },
  { prefix: '/api/articles', upstream: 'content' },
  { prefix: '/api/tags', upstream: 'content' },
  { prefix: '/api/leaderboard', upstream: 'content' },
  { prefix: '/api/notifications', upstream: 'notifier' },
  // The queue dashboard is a web page with its own forms.
  { prefix: '/api/admin/queues', upstream: 'notifier', anyBody: true },
  { prefix: '/api/admin/users', upstream: 'auth' },
];

/** A request URL's path, without the query string and without a trailing slash. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** The endpoints that start a session (sign-up, login): a cookie sent along authenticates nothing there. */
export const SIGN_IN_ENDPOINTS: ReadonlyArray<readonly [string, string]> = [
  ['POST', '/api/users'],
  ['POST', '/api/users/login'],
];

export function isSignIn(method: string, url: string): boolean {
  if (method !== 'POST') return false;
  const path = pathOf(url);
  return SIGN_IN_ENDPOINTS.some(([, p]) => p === path);
}
