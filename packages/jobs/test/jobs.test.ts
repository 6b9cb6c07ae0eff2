import { auditKeySpace, closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys, QUEUE_USERS } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { Queue, Worker } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createWorker,
  EVENTS_MAX_LEN,
  InvalidJobPayloadError,
  Producer,
  payloadProblem,
  QUEUES,
  removeRetiredJobs,
  retentionBounds,
  STREAM_NODE_ENTRIES,
} from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const code = {
  v: 2 as const,
  userId: 'u1',
  to: 'ada@example.com',
  username: 'ada',
  expiresAt: new Date().toISOString(),
};

describe('job catalog', () => {
  it('accepts a valid payload and names what is wrong with an invalid one', () => {
    expect(payloadProblem('security-email', 'verification-code', code)).toBeNull();
    expect(payloadProblem('security-email', 'verification-code', { ...code, to: 'x' })).toMatch(/^\/to /);
    expect(payloadProblem('security-email', 'verification-code', { ...code, v: 9 })).toBe(
      'unknown version 9 of security-email/verification-code',
    );
    expect(payloadProblem('security-email', 'nope', code)).toBe('unknown job security-email/nope');
    expect(payloadProblem('security-email', 'password-reset', { ...code, token: 'x'.repeat(43) })).toMatch(
      /token|property/i,
    );
  });

  it('has no place for a secret in any security email, and no current version carrying one', () => {
    for (const job of ['verification-code', 'password-reset'] as const) {
      const { v: _v, ...rest } = code;
      expect(payloadProblem('security-email', job, { v: 1, ...rest, code: '012345' })).toMatch(/version 1/);
      expect(payloadProblem('email', job, { ...code, v: 1, code: '012345' })).toMatch(/unknown job/);
    }
  });

  it("names the same queues as the key map, whose users get each queue's Redis keys", () => {
    expect(Object.keys(QUEUES).sort()).toEqual(Object.keys(QUEUE_USERS).sort());
  });

  it('gives every queue bounded retention and exponential backoff with jitter', () => {
    for (const queue of Object.values(QUEUES)) {
      expect(queue.options.removeOnComplete).toMatchObject({ count: expect.any(Number) });
      expect(queue.options.removeOnFail).toMatchObject({ count: expect.any(Number) });
      expect(queue.options.backoff).toMatchObject({ type: 'exponential', jitter: expect.any(Number) });
    }
  });
});

describe('Producer on a real redis-queue', () => {
  let server: RedisServer;
  let redis: RoleCheckedRedis;
  const keys = createKeys('jobs');
  let producer: Producer;
  beforeAll(async () => {
    server = await RedisServer.start('queue');
    redis = await connectRedis({ url: server.url, role: 'queue', use: 'producer', name: 't', log: silent });
    producer = new Producer(redis, keys);
  });
  afterAll(async () => {
    await producer.close();
    await closeRedis(redis);
    await server.dispose();
  });

  it('enqueues with the catalog policy under the hash-tagged prefix, once per job id', async () => {
    const id = await producer.enqueue('security-email', 'verification-code', code, { jobId: 'vc-u1-1' });
    expect(id).toBe('vc-u1-1');
    await producer.enqueue('security-email', 'verification-code', code, { jobId: 'vc-u1-1' });
    const queue = new Queue('security-email', { connection: redis, prefix: keys.bullPrefix() });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 1 });
    const job = await queue.getJob('vc-u1-1');
    expect(job?.data).toEqual(code);
    expect(job?.opts.attempts).toBe(6);
    expect(await redis.exists(`${keys.bullPrefix()}:security-email:vc-u1-1`)).toBe(1);
  });

  it('refuses an invalid payload before anything reaches Redis', async () => {
    const before = await redis.dbsize();
    await expect(
      producer.enqueue('security-email', 'verification-code', { ...code, to: 'nobody' }),
    ).rejects.toBeInstanceOf(InvalidJobPayloadError);
    expect(await redis.dbsize()).toBe(before);
  });
});

describe('createWorker on a real redis-queue', () => {
  let server: RedisServer;
  let producerRedis: RoleCheckedRedis;
  let workerRedis: RoleCheckedRedis;
  const keys = createKeys('workers');
  let producer: Producer;
  beforeAll(async () => {
    server = await RedisServer.start('queue');
    producerRedis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'p',
      log: silent,
    });
    workerRedis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'worker',
      name: 'w',
      log: silent,
    });
    producer = new Producer(producerRedis, keys);
  });
  afterAll(async () => {
    await producer.close();
    await closeRedis(producerRedis);
    await closeRedis(workerRedis);
    await server.dispose();
  });

  it('hands valid jobs to their handler, retries failures, and fails invalid payloads at once with the reason', async () => {
    const seen: string[] = [];
    let failOnce = true;
    const worker = createWorker(
      'security-email',
      {
        'verification-code': async (payload, meta) => {
          if (failOnce) {
            failOnce = false;
            throw new Error('smtp down');
          }
          seen.push(`${payload.userId}#${meta.attempt}`);
        },
        'password-reset': async () => {},
        'email-changed': async () => {},
      },
      { connection: workerRedis, keys, concurrency: 2 },
    );
    const queue = producer.queueOf('security-email');
    await producer.enqueue('security-email', 'verification-code', code, { jobId: 'ok' });
    await queue.add(
      'verification-code',
      { ...code, expiresAt: 'nope' },
      { jobId: 'bad', attempts: 8, backoff: 10 },
    );
    await queue.add('no-such-job', code, { jobId: 'unknown', attempts: 8 });
    // The retry of `ok` waits out the queue's first backoff (1 s, jittered).
    await waitFor(async () => (await queue.getJobState('ok')) === 'completed', 15_000);
    await waitFor(async () => (await queue.getJobState('unknown')) === 'failed');
    const bad = await queue.getJob('bad');
    expect(await bad?.getState()).toBe('failed');
    expect(bad?.attemptsMade).toBe(1);
    expect(bad?.failedReason).toMatch(/^\/expiresAt /);
    expect((await queue.getJob('unknown'))?.failedReason).toBe('unknown job security-email/no-such-job');
    expect(seen).toEqual(['u1#2']);
    await worker.close();
  }, 30_000);

  it('fails a retired job that carried a secret, without retry, and removes its data first', async () => {
    const noop = async () => {};
    const worker = createWorker(
      'email',
      { welcome: noop, 'email-changed': noop, notification: noop, digest: noop },
      { connection: workerRedis, keys },
    );
    const queue = producer.queueOf('email');
    const { v: _v, ...rest } = code;
    await queue.add(
      'password-reset',
      { ...rest, v: 1, token: 's3cret'.repeat(8) },
      { jobId: 'old-reset', attempts: 8 },
    );
    await waitFor(async () => (await queue.getJobState('old-reset')) === 'failed');
    const job = await queue.getJob('old-reset');
    expect(job?.attemptsMade).toBe(1);
    expect(job?.data).toEqual({ v: 1, retired: true });
    expect(job?.failedReason).toMatch(/retired/);
    const raw = await producerRedis.hgetall(`${keys.bullPrefix()}:email:old-reset`);
    expect(JSON.stringify(raw)).not.toContain('s3cret');
    await worker.close();
  });
});

describe('removeRetiredJobs on a real redis-queue', () => {
  it('removes the secret-carrying jobs an older producer left, in any state, and nothing else', async () => {
    const server = await RedisServer.start('queue');
    const redis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'r',
      log: silent,
    });
    const keys = createKeys('retired');
    try {
      const email = new Queue('email', { connection: redis, prefix: keys.bullPrefix() });
      const { v: _v, ...rest } = code;
      const old = { ...rest, v: 1, code: '424242' };
      // A completed and a failed one, moved there by a plain worker (as an older notifier would have).
      await email.add('verification-code', old, { jobId: 'verification-code-u2-1' });
      await email.add('verification-code', old, { jobId: 'verification-code-u2-2', attempts: 1 });
      const workerRedis = await connectRedis({
        url: server.url,
        role: 'queue',
        use: 'worker',
        name: 'w',
        log: silent,
      });
      const plain = new Worker(
        'email',
        async (job) => {
          if (job.id === 'verification-code-u2-2') throw new Error('smtp down');
        },
        { connection: workerRedis, prefix: keys.bullPrefix() },
      );
      await waitFor(async () => (await email.getJobCountByTypes('completed', 'failed')) === 2);
      await plain.close();
      await closeRedis(workerRedis);
      await email.add('verification-code', old, { jobId: 'verification-code-u1-1' }); // waiting
      await email.add('verification-code', old, { jobId: 'verification-code-u1-2', delay: 60_000 }); // delayed
      await email.add(
        'password-reset',
        { ...rest, v: 1, token: 't'.repeat(43) },
        { jobId: 'password-reset-abc' },
      );
      await email.add('welcome', { v: 1, userId: 'u1', to: 'a@b.c', username: 'a' }, { jobId: 'welcome-u1' });
      await email.close();
      expect(await removeRetiredJobs(redis, keys, 'email')).toBe(5);
      const jobs = await redis.keys(`${keys.bullPrefix()}:email:*-*`);
      expect(jobs.map((k) => k.slice(k.lastIndexOf(':') + 1)).filter((id) => id !== 'stalled-check')).toEqual(
        ['welcome-u1'],
      );
      const hashes = (await redis.keys('*')).map(async (k) =>
        (await redis.type(k)) === 'hash' ? JSON.stringify(await redis.hgetall(k)) : '',
      );
      expect((await Promise.all(hashes)).join()).not.toContain('424242');
      expect(await removeRetiredJobs(redis, keys, 'email')).toBe(0);
      expect(await removeRetiredJobs(redis, keys, 'security-email')).toBe(0);
    } finally {
      await closeRedis(redis);
      await server.dispose();
    }
  });
});

describe('retentionBounds: the lengths of BullMQ keys the catalog bounds, for the key-space audit', () => {
  it("gives each queue's completed and failed sets their retention's count, its events stream its length", () => {
    const keys = createKeys('ret');
    const bound = retentionBounds(keys);
    const key = (queue: string, suffix: string) => `${keys.bullPrefix()}:${queue}:${suffix}`;
    expect(bound(key('notifications', 'completed'))).toBe(10_000);
    expect(bound(key('notifications', 'failed'))).toBe(50_000);
    expect(bound(key('security-email', 'completed'))).toBe(1000);
    expect(bound(key('rankings', 'completed'))).toBe(QUEUES.rankings.options.removeOnComplete.count);
    for (const queue of Object.keys(QUEUES))
      expect(bound(key(queue, 'events'))).toBe(EVENTS_MAX_LEN + STREAM_NODE_ENTRIES);
    // A backlog has no bound but the audit's bytes; nor has a job, nor another deployment's queue.
    expect(bound(key('notifications', 'wait'))).toBeUndefined();
    expect(bound(key('notifications', '42'))).toBeUndefined();
    expect(bound(`${createKeys('other').bullPrefix()}:notifications:completed`)).toBeUndefined();
  });

  it('holds on a real redis-queue: what BullMQ keeps is within the bounds, and the audit counts no large value for it', async () => {
    const keys = createKeys('ret');
    const server = await RedisServer.start('queue', { keyPrefix: 'ret' });
    const connect = (url: string, use: 'producer' | 'worker', name: string) =>
      connectRedis({ url, role: 'queue', use, name, log: silent });
    const redis = await connect(server.url, 'producer', 'p');
    const workerRedis = await connect(server.url, 'worker', 'w');
    const audit = await connect(server.urlFor('audit'), 'producer', 'audit');
    const producer = new Producer(redis, keys);
    const keep = QUEUES.rankings.options.removeOnComplete.count;
    const worker = createWorker('rankings', { recompute: async () => {} }, { connection: workerRedis, keys });
    try {
      for (let i = 0; i < keep + 30; i += 1)
        await producer.enqueue(
          'rankings',
          'recompute',
          { v: 1, ranking: 'trending' },
          { jobId: `r-${i}-${'x'.repeat(40)}` },
        );
      const queue = producer.queueOf('rankings');
      await waitFor(async () => ((await queue.getJobCounts('completed')).completed ?? 0) >= keep, 15_000);
      await waitFor(async () => (await queue.getJobCounts('wait', 'active')).wait === 0, 15_000);
      const completed = `${keys.bullPrefix()}:rankings:completed`;
      const events = `${keys.bullPrefix()}:rankings:events`;
      expect(await redis.zcard(completed)).toBe(keep);
      expect(await redis.hget(`${keys.bullPrefix()}:rankings:meta`, 'opts.maxLenEvents')).toBe(
        String(EVENTS_MAX_LEN),
      );
      // Over a byte bound this small (a job is under it), both keys are large values, unless their lengths are bounded.
      const bySize = await auditKeySpace({ prefix: 'ret', clients: { queue: audit }, largeValueBytes: 4096 });
      expect(
        bySize.violations
          .filter((v) => v.kind === 'large-value')
          .map((v) => v.key)
          .sort(),
      ).toEqual([completed, events].sort());
      const byRetention = await auditKeySpace({
        prefix: 'ret',
        clients: { queue: audit },
        largeValueBytes: 4096,
        lengthBounds: retentionBounds(keys),
      });
      expect(byRetention.counts['large-value']).toBe(0);
    } finally {
      await worker.close();
      await producer.close();
      await closeRedis(audit);
      await closeRedis(workerRedis);
      await closeRedis(redis);
      await server.dispose();
    }
  }, 30_000);
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}
