/**
 * The version choice check (docs/decisions.md): BullMQ 6 on ioredis 6 with its default protocol (RESP3,
 * negotiated with HELLO 3) against the Redis this project targets, started with deploy/redis/queue.conf.
 * It exercises the BullMQ features that read replies whose shape differs between RESP2 and RESP3:
 * job hashes, stream events (QueueEvents), counts, retries with backoff, and job schedulers.
 */
import { randomUUID } from 'node:crypto';
import { RedisServer } from '@atoll/testkit';
import { type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, createRedisClient } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('BullMQ 6 + ioredis 6 (default protocol) on redis-server with queue.conf', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start('queue');
  });
  afterAll(async () => {
    await server.dispose();
  });

  const connection = (use: 'producer' | 'worker') =>
    createRedisClient({ url: server.url, role: 'queue', use, name: `compat:${use}`, log: silent });

  it('negotiates RESP3 by default', async () => {
    const c = connection('producer');
    await c.connect();
    const info = (await c.call('CLIENT', 'INFO')) as string;
    expect(info).toMatch(/resp=3/);
    await closeRedis(c);
  });

  it('adds, processes, retries with backoff, reports counts and stream events, and runs schedulers', async () => {
    const name = `compat-${randomUUID()}`;
    const prefix = `{bull-${name}}`;
    const producer = connection('producer');
    const queue = new Queue(name, { connection: producer, prefix });
    const events = new QueueEvents(name, { connection: connection('worker'), prefix });
    await events.waitUntilReady();

    const attempts = new Map<string, number>();
    const worker = new Worker(
      name,
      async (job: Job<{ n: number }>) => {
        const seen = (attempts.get(job.id ?? '') ?? 0) + 1;
        attempts.set(job.id ?? '', seen);
        if (job.data.n === 2 && seen === 1) throw new Error('first attempt fails');
        return { doubled: job.data.n * 2 };
      },
      { connection: connection('worker'), prefix, concurrency: 4 },
    );

    const completed = new Map<string, unknown>();
    events.on('completed', ({ jobId, returnvalue }) => completed.set(jobId, returnvalue));

    const jobs = await queue.addBulk(
      [1, 2, 3].map((n) => ({
        name: 'double',
        data: { n },
        opts: { attempts: 2, backoff: { type: 'fixed', delay: 50 } },
      })),
    );
    await queue.upsertJobScheduler('tick', { every: 100, limit: 2 }, { name: 'double', data: { n: 10 } });

    const deadline = Date.now() + 10_000;
    while (completed.size < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));

    for (const job of jobs) {
      const done = await queue.getJob(job.id ?? '');
      expect(done?.returnvalue).toEqual({ doubled: (job.data as { n: number }).n * 2 });
    }
    expect(attempts.get(jobs[1]?.id ?? '')).toBe(2);
    // QueueEvents reads the events stream: its replies came through RESP3 intact.
    expect(completed.get(jobs[0]?.id ?? '')).toEqual({ doubled: 2 });
    const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active');
    expect(counts.completed).toBeGreaterThanOrEqual(5);
    expect(counts.failed).toBe(0);
    const schedulers = await queue.getJobSchedulers();
    expect(schedulers.map((s) => s.key)).toContain('tick');

    await worker.close();
    await events.close();
    await queue.obliterate({ force: true });
    await queue.close();
  });
});
