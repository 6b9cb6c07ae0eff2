/**
 * The gateway's route table and what else a path means to it. A prefix matches itself and everything
 * below it (`/api/articles` matches `/api/articles/how-to/comments`). Order does not matter: prefixes
 * never overlap. Bodies sent to a prefix must be JSON (415 otherwise) unless it says `anyBody`. A request
 * is matched against these once, at the door (classify.ts).
 */
import type { Tier } from '../config.ts';

export type Upstream = 'auth' | 'content' | 'notifier';

export interface RouteEntry {
  prefix: string;
  upstream: Upstream;
  anyBody?: boolean;
}

export const ROUTE_TABLE: ReadonlyArray<RouteEntry> = [
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

/** The endpoints that start a session (sign-up, login): a cookie sent along authenticates nothing there. */
export const SIGN_IN_ENDPOINTS: ReadonlyArray<readonly [string, string]> = [
  ['POST', '/api/users'],
  ['POST', '/api/users/login'],
];

/** The endpoints with a rate-limit tier of their own on top of the caller's: method and path. */
export const ENDPOINT_TIERS: ReadonlyArray<readonly [string, string, Tier]> = [
  ['POST', '/api/users', 'auth'],
  ['POST', '/api/users/login', 'auth'],
  ['POST', '/api/user/verification/confirm', 'auth'],
  ['POST', '/api/users/password-reset/confirm', 'auth'],
  ['GET', '/api/auth/google', 'auth'],
  ['POST', '/api/user/verification', 'mail'],
  ['POST', '/api/users/password-reset', 'mail'],
];

/**
 * The paths no rate limit counts: probes and the scraper call them often, and they answer without asking
 * anything upstream (`/health/services` asks every service, so it counts).
 */
export const UNLIMITED_PATHS: ReadonlySet<string> = new Set(['/health/live', '/health/ready', '/metrics']);
