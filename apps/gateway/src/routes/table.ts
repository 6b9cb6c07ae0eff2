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
];
