/**
 * The gateway's route table: which service owns which public path prefix. A prefix matches itself and
 * everything below it (`/api/articles` matches `/api/articles/how-to/comments`). Order does not matter:
 * prefixes never overlap.
 */
export type Upstream = 'auth' | 'content' | 'notifier';

export const ROUTE_TABLE: ReadonlyArray<{ prefix: string; upstream: Upstream }> = [
  { prefix: '/api/users', upstream: 'auth' },
  { prefix: '/api/user', upstream: 'auth' },
  { prefix: '/api/auth', upstream: 'auth' },
  { prefix: '/api/profiles', upstream: 'content' },
  { prefix: '/api/articles', upstream: 'content' },
  { prefix: '/api/tags', upstream: 'content' },
  { prefix: '/api/leaderboard', upstream: 'content' },
  { prefix: '/api/notifications', upstream: 'notifier' },
  { prefix: '/api/admin/queues', upstream: 'notifier' },
];
