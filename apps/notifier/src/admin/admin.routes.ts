/**
 * The queue dashboard for admins (the `admin` role, see apps/auth's ADMIN_EMAILS):
 * - `GET /api/admin/queues` — job counts per queue (waiting, active, delayed, failed, ...);
 * - `/api/admin/queues/board` — Bull Board (`@bull-board/fastify`), read-only: counts, jobs in every
 *   state, failed jobs with their reason. Every write action of the board (add, retry, edit data,
 *   promote, clean, empty, obliterate, pause, rate limits, schedulers) answers 405: an admin account, or
 *   whoever takes one over, cannot send an email from the platform or replay one. Retry is not offered:
 *   a failed email's owner asks again (codes, resets) or gets it in the next digest (notifications).
 * - Job data is shown redacted: only the fields in SHOWN_FIELDS (versions, ids, kinds, times); every other
 *   field (addresses, usernames, excerpts, titles, and any field a later version adds) reads
 *   `[redacted]`. Job payloads never carry a secret anyway (@atoll/jobs).
 * Both answer 401 without a session and 403 for a user without the admin role.
 */
import { requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Queue } from 'bullmq';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';

export const BOARD_PATH = '/api/admin/queues/board';
/** The job data fields the board shows: nothing that names or quotes a person. */
export const SHOWN_FIELDS = new Set([
  'v',
  'retired',
  'type',
  'period',
  'ranking',
  'total',
  'userId',
  'actorId',
  'recipientId',
  'notificationId',
  'commentId',
  'expiresAt',
  'changedAt',
  'occurredAt',
]);

/** A job's data as the board shows it: allowed fields as they are, every other field `[redacted]`. */
export function redactJobData(data: unknown): unknown {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) return '[redacted]';
  return Object.fromEntries(
    Object.entries(data).map(([key, value]) => [
      key,
      SHOWN_FIELDS.has(key) && (value === null || typeof value !== 'object') ? value : '[redacted]',
    ]),
  );
}

export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;

function requireAdmin(request: FastifyRequest): void {
  if (!requireIdentity(request).roles.includes('admin')) {
    throw new AppError('FORBIDDEN', { user: ['is not an admin'] });
  }
}

const adminRoutes: FastifyPluginAsync<{ queues: Queue[] }> = async (app, { queues }) => {
  app.addHook('onRequest', async (request) => requireAdmin(request));

  app.get('/api/admin/queues', async () => ({
    queues: Object.fromEntries(
      await Promise.all(queues.map(async (q) => [q.name, await q.getJobCounts(...QUEUE_STATES)] as const)),
    ),
  }));

  const board = new FastifyAdapter();
  const adapters = queues.map((q) => {
    const adapter = new BullMQAdapter(q, { readOnlyMode: true, allowRetries: false });
    adapter.setFormatter('data', redactJobData);
    adapter.setFormatter('returnValue', () => '[redacted]');
    return adapter;
  });
  createBullBoard({ queues: adapters, serverAdapter: board });
  board.setBasePath(BOARD_PATH);
  await app.register(board.registerPlugin(), { prefix: BOARD_PATH });
};

export default adminRoutes;
