/**
 * redis-session and redis-queue as Sentinel groups (a primary, a replica, three sentinels each), under
 * load: signed-in users' sessions resolving at the gateway in a loop (GET /api/user), and a producer
 * enqueueing notification jobs through @atoll/jobs as content does (its own ACL user, its
 * `redis+sentinel://` URL) that the notifier processes. Then the session primary is SIGKILLed, then the
 * queue primary; each killed node comes back (as a supervisor restarts a crashed pod) and the sentinels
 * make it a replica; last a planned switch-over of each group turns a primary into a replica under its
 * clients. Measured: the seconds the gateway answered 503 after each kill, the sessions still valid
 * after all of it, the acknowledged jobs never processed, and what waiting for a replica costs an
 * enqueue. The READONLY replies the producer reconnected on are counted, not required: Sentinel
 * disconnects the clients of a primary it demotes (CLIENT KILL in the same MULTI as its REPLICAOF), so
 * they reconnect through the sentinels before any write could be refused; `reconnectOnError` covers a
 * primary demoted any other way.
 */
import { performance } from 'node:perf_hooks';
import { Producer } from '@atoll/jobs';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, startTestStack } from './helpers.ts';

const USERS = 50;
const SESSION_LOOPS = 8;

interface Outage {
  /** The first and the last failed GET /api/user after the kill, ms since the epoch. */
  first: number | null;
  last: number | null;
  failures: number;
}
const seconds = (o: Outage) => (o.first === null || o.last === null ? 0 : (o.last - o.first) / 1000);

describe('Sentinel failover under load', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let queueRedis: RoleCheckedRedis;
  let producer: Producer;
  let readonly = 0;
  const tokens: string[] = [];
  const ids: string[] = [];

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('sentinel', {}, { sentinel: ['session', 'queue'] }));
    api = apiClient(stack.gatewayUrl);
    const queue = stack.sentinels.queue;
    if (!queue) throw new Error('no queue group');
    queueRedis = await connectRedis({
      url: queue.urlFor('content'),
      role: 'queue',
      use: 'producer',
      name: 'test:content-queue',
      log: {
        info() {},
        error() {},
        warn(_obj, msg) {
          if (msg?.includes('READONLY')) readonly += 1;
        },
      },
    });
    producer = new Producer(queueRedis, createKeys(stack.envOf('content').REDIS_KEY_PREFIX as string));
    for (let i = 0; i < USERS; i++) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: `fo${i}`, email: `fo${i}@example.com`, password: 'correct horse' } },
      });
      expect([200, 201]).toContain(res.status);
      tokens.push(res.body.user.token as string);
    }
    for (const token of tokens.slice(0, 2))
      ids.push((await api('GET', '/api/auth/session', { token })).body.session.userId as string);
    // The notifier processes a notification once it knows the recipient (user.registered).
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      expect(
        await eventually(
          async () =>
            (await db.query('SELECT 1 FROM notifier.recipients WHERE user_id = $1', [ids[1]])).rowCount === 1,
          20_000,
        ),
      ).toBe(true);
    } finally {
      await db.end();
    }
  }, 180_000);

  afterAll(async () => {
    await producer?.close();
    if (queueRedis) await closeRedis(queueRedis);
    await dispose?.();
  });

  it('keeps every session and every acknowledged job through SIGKILLed primaries', async () => {
    const session = stack.sentinels.session;
    const queue = stack.sentinels.queue;
    if (!session || !queue) throw new Error('no Sentinel groups');
    let running = true;

    // Sessions resolving at the gateway; a failure is noted in the outage under way.
    let outage: Outage | null = null;
    let requests = 0;
    const sessionLoop = async (n: number) => {
      for (let i = n; running; i += SESSION_LOOPS) {
        const res = await api('GET', '/api/user', { token: tokens[i % USERS] }).catch(() => ({ status: 0 }));
        requests += 1;
        if (res.status !== 200 && outage) {
          outage.first ??= Date.now();
          outage.last = Date.now();
          outage.failures += 1;
        }
      }
    };

    // Jobs enqueued one after another; an enqueue that resolved is acknowledged.
    const acknowledged: string[] = [];
    let refused = 0;
    let sequence = 0;
    const jobLoop = async () => {
      while (running) {
        const jobId = `failover-${sequence++}`;
        try {
          await producer.enqueue(
            'notifications',
            'follow',
            {
              v: 1,
              actorId: ids[0] as string,
              actorUsername: 'fo0',
              recipientId: ids[1] as string,
              occurredAt: new Date().toISOString(),
            },
            { jobId },
          );
          acknowledged.push(jobId);
        } catch {
          refused += 1;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    };

    const loops = [...Array.from({ length: SESSION_LOOPS }, (_, n) => sessionLoop(n)), jobLoop()];
    const settle = async (ms: number) => new Promise((r) => setTimeout(r, ms));
    const killAndRecover = async (group: NonNullable<Stack['sentinels']['session']>) => {
      const o: Outage = { first: null, last: null, failures: 0 };
      outage = o;
      const killedAt = Date.now();
      const old = await group.killPrimary();
      await group.waitForFailover(old);
      const failoverS = (Date.now() - killedAt) / 1000;
      // Two seconds of load on the new primary alone, then the old one returns as its replica.
      await settle(2000);
      await group.restart(old);
      await settle(1000);
      outage = null;
      return { outage: o, failoverS };
    };

    await settle(2000);
    const sessionKill = await killAndRecover(session);
    const queueKill = await killAndRecover(queue);
    // Planned switch-overs: the primaries turn replica under connected clients (READONLY).
    await queue.switchover();
    await session.switchover();
    await settle(3000);
    running = false;
    await Promise.all(loops);

    // Every acknowledged job is processed, once.
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    let processed = new Set<string>();
    try {
      await eventually(async () => {
        const { rows } = await db.query<{ key: string }>(
          "SELECT idempotency_key AS key FROM notifier.notifications WHERE idempotency_key LIKE 'notifications:failover-%'",
        );
        processed = new Set(rows.map((r) => r.key.slice('notifications:'.length)));
        return acknowledged.every((id) => processed.has(id));
      }, 60_000);
    } finally {
      await db.end();
    }
    const lost = acknowledged.filter((id) => !processed.has(id));

    // Every session still resolves.
    const valid = (
      await Promise.all(tokens.map((token) => api('GET', '/api/user', { token }).then((r) => r.status)))
    ).filter((s) => s === 200).length;

    // What waiting for a replica costs an enqueue, on the settled group.
    const cost = await enqueueCost(producer, queueRedis, ids);

    console.log(
      `sentinel failover: session primary SIGKILL → ${seconds(sessionKill.outage).toFixed(1)} s of failures at the gateway ` +
        `(${sessionKill.outage.failures} requests, failover ${sessionKill.failoverS.toFixed(1)} s); ` +
        `queue primary SIGKILL → ${seconds(queueKill.outage).toFixed(1)} s (failover ${queueKill.failoverS.toFixed(1)} s); ` +
        `sessions valid after: ${valid}/${USERS}; jobs acknowledged ${acknowledged.length}, lost ${lost.length}, ` +
        `refused (not acknowledged) ${refused}; READONLY replies reconnected on: ${readonly}; ` +
        `gateway requests ${requests}; enqueue ${cost.plain.toFixed(2)} ms without WAIT, ${cost.waited.toFixed(2)} ms with WAIT 1`,
    );
    expect(valid).toBe(USERS);
    expect(lost).toEqual([]);
    expect(acknowledged.length).toBeGreaterThan(50);
    expect(seconds(sessionKill.outage)).toBeLessThanOrEqual(10);
    expect(seconds(queueKill.outage)).toBeLessThanOrEqual(10);
  }, 240_000);
});

/**
 * The mean enqueue time with the replica acknowledgement (the Producer, on the sentinel URL) and
 * without it (the same BullMQ add on the same connection, no WAIT).
 */
async function enqueueCost(
  producer: Producer,
  redis: RoleCheckedRedis,
  ids: string[],
): Promise<{ plain: number; waited: number }> {
  const rounds = 200;
  const payload = (i: number) => ({
    v: 1 as const,
    actorId: ids[0] as string,
    actorUsername: 'fo0',
    recipientId: ids[1] as string,
    occurredAt: new Date(Date.UTC(2020, 0, 1, 0, 0, i)).toISOString(),
  });
  const queue = producer.queueOf('notifications');
  let start = performance.now();
  for (let i = 0; i < rounds; i++) await queue.add('follow', payload(i), { jobId: `cost-plain-${i}` });
  const plain = (performance.now() - start) / rounds;
  start = performance.now();
  for (let i = 0; i < rounds; i++)
    await producer.enqueue('notifications', 'follow', payload(i), { jobId: `cost-wait-${i}` });
  const waited = (performance.now() - start) / rounds;
  expect(redis.status).toBe('ready');
  return { plain, waited };
}
