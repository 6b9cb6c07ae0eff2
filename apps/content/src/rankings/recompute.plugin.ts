/**
 * The scheduled recompute of the rankings: a BullMQ Job Scheduler on the `rankings` queue adds one
 * `recompute` job per ranking every interval, whatever the number of content instances (the scheduler is
 * upserted by id, so every instance declaring it leaves one), and one instance's worker runs it: the
 * ranking is replaced whole from PostgreSQL (ranking.ts `refresh`). Between recomputes the rankings
 * follow favorites as they happen; the recompute corrects whatever a race let drift.
 *
 * The worker is the catalog's (`createWorker`): an invalid payload fails at once, unretried.
 */
import { createWorker, type Handlers, QUEUES } from '@atoll/jobs';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { Queue } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { Rankings } from './rankings.ts';

export interface RecomputeOptions {
  keyPrefix: string;
  redisQueueUrl: string;
  rankings: Rankings;
  everyMs: number;
}

const recomputePlugin: FastifyPluginAsync<RecomputeOptions> = async (app, opts) => {
  const prefix = createKeys(opts.keyPrefix).bullPrefix();
  const handlers: Handlers<'rankings'> = {
    recompute: async ({ ranking }) => {
      await opts.rankings[ranking].refresh();
    },
  };
  const connection = await connectRedis({
    url: opts.redisQueueUrl,
    role: 'queue',
    use: 'worker',
    name: 'content:rankings-worker',
    log: app.log,
  });
  const worker = createWorker('rankings', handlers, {
    connection,
    keys: createKeys(opts.keyPrefix),
    concurrency: 1,
    autorun: false,
  });
  worker.on('failed', (job, err) => app.log.warn({ jobId: job?.id, err }, 'ranking recompute failed'));
  const queue = new Queue('rankings', { connection: app.redis.queue!, prefix });

  app.addHook('onReady', async () => {
    for (const ranking of ['trending', 'leaderboard'] as const) {
      await queue.upsertJobScheduler(
        `recompute-${ranking}`,
        { every: opts.everyMs },
        { name: 'recompute', data: { v: 1, ranking }, opts: QUEUES.rankings.options },
      );
    }
    void worker.run();
  });
  app.addHook('preClose', async () => {
    await worker.close(); // lets a running recompute finish
  });
  app.addHook('onClose', async () => {
    await queue.close();
    await closeRedis(connection);
  });
};

export const rankingRecompute = fp(recomputePlugin, {
  name: 'content-ranking-recompute',
  dependencies: ['@atoll/redis-roles'],
});
