/**
 * What redis-queue's persistence (deploy/redis/queue.conf: AOF, `appendfsync everysec`) guarantees to a
 * producer: redis-server SIGKILLed while jobs are being added, then restarted on its files — every job
 * whose enqueue was acknowledged is there. (Redis writes the AOF before it replies, so a killed
 * process loses nothing it acknowledged; `everysec` only bounds what a machine or power failure can
 * lose: about the last second of writes. See docs/decisions.md.)
 */
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Producer } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const payload = (i: number) => ({
  v: 1 as const,
  userId: `u${i}`,
  to: `user${i}@example.com`,
  username: `user${i}`,
});

describe('redis-queue killed while jobs are being added', () => {
  let server: RedisServer;
  const keys = createKeys('durable');
  beforeAll(async () => {
    server = await RedisServer.start('queue');
  });
  afterAll(async () => {
    await server.dispose();
  });

  it('keeps every acknowledged enqueue across a SIGKILL and a restart', async () => {
    const redis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'p',
      log: silent,
    });
    const producer = new Producer(redis, keys);
    const acknowledged: string[] = [];
    let failed = 0;
    let next = 0;
    let killed = false;
    // Eight producers adding as fast as they can, until the server is gone under them.
    const producers = Array.from({ length: 8 }, async () => {
      while (!killed || failed === 0) {
        const i = next++;
        try {
          acknowledged.push(await producer.enqueue('email', 'welcome', payload(i), { jobId: `w-${i}` }));
        } catch {
          failed += 1;
          if (killed) return;
          // A failure before the kill (a slow machine): give the timers a turn rather than spin.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    });
    const deadline = Date.now() + 30_000;
    while (acknowledged.length < 500 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    await server.kill(); // SIGKILL: no shutdown, no final save
    killed = true;
    await Promise.all(producers);
    await producer.close().catch(() => undefined);
    redis.disconnect();

    await server.restart();
    const after = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'worker',
      name: 'c',
      log: silent,
    });
    const queue = new Queue('email', { connection: after, prefix: keys.bullPrefix() });
    const present = new Set<string>();
    for (const id of acknowledged) if (await queue.getJob(id)) present.add(id);
    const missing = acknowledged.filter((id) => !present.has(id));
    console.info(
      `redis-queue SIGKILL: ${acknowledged.length} acknowledged, ${present.size} present, ${failed} failed`,
    );
    expect(acknowledged.length).toBeGreaterThanOrEqual(500);
    expect(failed).toBeGreaterThan(0); // the kill really happened mid-stream
    expect(missing).toEqual([]);
    expect((await queue.getJobCounts('waiting')).waiting).toBeGreaterThanOrEqual(acknowledged.length);
    await queue.close();
    await closeRedis(after as RoleCheckedRedis);
  }, 60_000);
});
