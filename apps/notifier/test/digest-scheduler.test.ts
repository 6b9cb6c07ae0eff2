/**
 * `keepDigestsScheduled` on a real redis-server with BullMQ: when BullMQ refuses the digest scheduler
 * (the job its next run would create is already there, as when two notifiers start together), the
 * notifier still starts, says so, and sets the scheduler up once the way is clear.
 */
import { RedisServer } from '@atoll/testkit';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { keepDigestsScheduled } from '../src/digest/digest.ts';

let redis: RedisServer;
beforeAll(async () => {
  redis = await RedisServer.start('queue');
});
afterAll(async () => {
  await redis?.stop();
});

// Midnight on 1 January: the next run is the same instant for the whole test.
const CRON = { daily: '0 0 0 1 1 *', weekly: '0 0 8 * * 1' };

it('starts when BullMQ refuses the scheduler, and sets it up once the way is clear', async () => {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('digests', { connection, prefix: 'sched' });
  const next = Date.UTC(new Date().getUTCFullYear() + 1, 0, 1);
  // A job where the scheduler's next one would go: what a run another notifier just took leaves.
  const blocking = await queue.add(
    'run',
    { v: 1, period: 'daily' },
    { jobId: `repeat:digest-daily:${next}` },
  );
  const warnings: string[] = [];
  const stop = await keepDigestsScheduled(queue, CRON, { warn: (_obj, msg) => warnings.push(msg) }, 100);
  try {
    expect(warnings).toEqual(['digest schedulers not set up, trying again']);
    expect(await queue.getJobScheduler('digest-daily')).toBeUndefined();
    await blocking.remove();
    for (let i = 0; i < 50 && !(await queue.getJobScheduler('digest-daily')); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const scheduler = await queue.getJobScheduler('digest-daily');
    expect(scheduler?.pattern).toBe(CRON.daily);
    expect(scheduler?.next).toBe(next);
    expect((await queue.getJobScheduler('digest-weekly'))?.pattern).toBe(CRON.weekly);
  } finally {
    stop();
    await queue.close();
    connection.disconnect();
  }
});

it('still refuses to start on any other error', async () => {
  const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
  const queue = new Queue('digests', { connection, prefix: 'refused' });
  await queue.waitUntilReady();
  // The queue user may not run scripts: what a misconfigured ACL gives.
  await connection.call(
    'ACL',
    'SETUSER',
    'noscripts',
    'on',
    '>noscripts-password',
    '~*',
    '+@all',
    '-@scripting',
  );
  const limited = new Redis(redis.url.replace(/\/\/[^@]*@/, '//noscripts:noscripts-password@'), {
    maxRetriesPerRequest: null,
  });
  const refused = new Queue('digests', { connection: limited, prefix: 'refused' });
  const warnings: string[] = [];
  try {
    await expect(
      keepDigestsScheduled(refused, CRON, { warn: (_obj, msg) => warnings.push(msg) }, 100),
    ).rejects.toThrow(/NOPERM/);
    expect(warnings).toEqual([]);
  } finally {
    await refused.close();
    limited.disconnect();
    await queue.close();
    connection.disconnect();
  }
});
