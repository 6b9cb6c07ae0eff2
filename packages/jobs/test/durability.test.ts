/**
 * What redis-queue's persistence (deploy/redis/queue.conf: AOF, `appendfsync everysec`) guarantees to a
 * producer: redis-server SIGKILLed while jobs are being added, then restarted on its files — every job
 * whose enqueue was acknowledged more than two seconds before the kill is there. Redis writes its AOF
 * buffer to the file before it replies, except while the disk is slow to finish the last second's
 * fsync: then, with `everysec`, it holds the buffer back for up to two seconds and replies meanwhile,
 * so a kill then loses what it acknowledged in that time, as a machine failure would. On a quiet disk
 * nothing acknowledged is lost. See docs/decisions.md.
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

  it('keeps every enqueue acknowledged over two seconds before a SIGKILL, across the restart', async () => {
    const redis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'p',
      log: silent,
    });
    const producer = new Producer(redis, keys);
    const acknowledged: string[] = [];
    const acknowledgedAt = new Map<string, number>();
    let failed = 0;
    let next = 0;
    let killed = false;
    // Eight producers adding as fast as they can, until the server is gone under them.
    const producers = Array.from({ length: 8 }, async () => {
      while (!killed || failed === 0) {
        const i = next++;
        try {
          const id = await producer.enqueue('email', 'welcome', payload(i), { jobId: `w-${i}` });
          acknowledged.push(id);
          acknowledgedAt.set(id, Date.now());
        } catch {
          failed += 1;
          if (killed) return;
          // A failure before the kill (a slow machine): give the timers a turn rather than spin.
          await new Promise((r) => setTimeout(r, 5));
        }
      }
    });
    // Long enough that most acknowledgements are older than the two seconds Redis may hold writes back.
    const started = Date.now();
    const deadline = started + 30_000;
    while ((acknowledged.length < 500 || Date.now() < started + 6_000) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5));
    const killedAt = Date.now();
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
    // What was acknowledged more than the two seconds (plus this process's own delay in seeing the
    // reply) before the kill: none of it may be missing.
    const settled = acknowledged.filter((id) => (acknowledgedAt.get(id) as number) < killedAt - 2_500);
    console.info(
      `redis-queue SIGKILL: ${acknowledged.length} acknowledged (${settled.length} over 2.5 s before the kill), ` +
        `${present.size} present, ${failed} failed; missing: ${missing.length}`,
    );
    expect(settled.length).toBeGreaterThanOrEqual(250);
    expect(failed).toBeGreaterThan(0); // the kill really happened mid-stream
    expect(settled.filter((id) => !present.has(id))).toEqual([]);
    expect((await queue.getJobCounts('waiting')).waiting).toBeGreaterThanOrEqual(present.size);
    await queue.close();
    await closeRedis(after as RoleCheckedRedis);
  }, 60_000);
});
