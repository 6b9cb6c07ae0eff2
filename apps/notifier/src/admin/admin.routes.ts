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
 *
 * Bull Board and what it loads (lodash, glob, ejs, valibot: about 6 MiB of the notifier's RSS at rest)
 * are loaded on the first request for the board, into a Fastify instance of their own (`onDemandApp`)
 * that the board's routes here hand their requests to once the caller is known to be an admin.
 */
import { requireIdentity } from '@atoll/identity';
import { AppError, onDemandApp } from '@atoll/service-kit';
import type { Queue } from 'bullmq';
import Fastify, {
  type FastifyPluginAsync,
  type FastifyReply,
  type FastifyRequest,
  type HTTPMethods,
} from 'fastify';

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

  const boardApp = onDemandApp(app, async () => {
    const [{ createBullBoard }, { BullMQAdapter }, { FastifyAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/fastify'),
    ]);
    const server = new FastifyAdapter();
    const adapters = queues.map((q) => {
      const adapter = new BullMQAdapter(q, { readOnlyMode: true, allowRetries: false });
      adapter.setFormatter('data', redactJobData);
      adapter.setFormatter('returnValue', () => '[redacted]');
      return adapter;
    });
    createBullBoard({ queues: adapters, serverAdapter: server });
    server.setBasePath(BOARD_PATH);
    const inner = Fastify({ logger: false });
    await inner.register(server.registerPlugin(), { prefix: BOARD_PATH });
    await inner.ready();
    return inner;
  });
  const serveBoard = async (request: FastifyRequest, reply: FastifyReply) => {
    const inner = await boardApp();
    const headers: Record<string, string> = {};
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = request.headers[name];
      if (typeof value === 'string') headers[name] = value;
    }
    const answer = await inner.inject({
      method: request.method as HTTPMethods,
      url: request.url,
      headers,
      ...(request.body === undefined ? {} : { payload: request.body as object }),
    });
    for (const name of FORWARDED_ANSWER_HEADERS)
      if (answer.headers[name] !== undefined) reply.header(name, answer.headers[name]);
    return reply.code(answer.statusCode).send(answer.rawPayload);
  };
  const methods: HTTPMethods[] = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'];
  app.route({ method: methods, url: BOARD_PATH, handler: serveBoard });
  app.route({ method: methods, url: `${BOARD_PATH}/*`, handler: serveBoard });
};

/** What the board is told of a request, and what its answer passes on (nothing that names the caller). */
const FORWARDED_REQUEST_HEADERS = ['accept', 'content-type', 'if-none-match', 'if-modified-since'];
const FORWARDED_ANSWER_HEADERS = [
  'content-type',
  'location',
  'cache-control',
  'etag',
  'last-modified',
  'allow',
];

export default adminRoutes;
