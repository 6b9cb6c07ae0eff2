/**
 * The queue dashboard for admins (the `admin` role, see apps/auth's ADMIN_EMAILS):
 * - `GET /api/admin/queues` — job counts per queue (waiting, active, delayed, failed, ...);
 * - `/api/admin/queues/board` — Bull Board (`@bull-board/fastify`): failed jobs with their reason,
 *   retried or removed from the browser.
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
  createBullBoard({ queues: queues.map((q) => new BullMQAdapter(q)), serverAdapter: board });
  board.setBasePath(BOARD_PATH);
  await app.register(board.registerPlugin(), { prefix: BOARD_PATH });
};

export default adminRoutes;
