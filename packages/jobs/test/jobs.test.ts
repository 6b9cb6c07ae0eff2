import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidJobPayloadError, Producer, payloadProblem, QUEUES } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const code = {
  v: 1 as const,
  userId: 'u1',
  to: 'ada@example.com',
  username: 'ada',
  code: '012345',
  expiresAt: new Date().toISOString(),
};

describe('job catalog', () => {
  it('accepts a valid payload and names what is wrong with an invalid one', () => {
    expect(payloadProblem('email', 'verification-code', code)).toBeNull();
    expect(payloadProblem('email', 'verification-code', { ...code, code: '12345' })).toMatch(/^\/code /);
    expect(payloadProblem('email', 'verification-code', { ...code, v: 9 })).toBe(
      'unknown version 9 of email/verification-code',
    );
    expect(payloadProblem('email', 'nope', code)).toBe('unknown job email/nope');
    expect(payloadProblem('email', 'password-reset', { ...code })).not.toBeNull();
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
    const id = await producer.enqueue('email', 'verification-code', code, { jobId: 'vc-u1-1' });
    expect(id).toBe('vc-u1-1');
    await producer.enqueue('email', 'verification-code', code, { jobId: 'vc-u1-1' });
    const queue = new Queue('email', { connection: redis, prefix: keys.bullPrefix() });
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 1 });
    const job = await queue.getJob('vc-u1-1');
    expect(job?.data).toEqual(code);
    expect(job?.opts.attempts).toBe(8);
    expect(await redis.exists(`${keys.bullPrefix()}:email:vc-u1-1`)).toBe(1);
  });

  it('refuses an invalid payload before anything reaches Redis', async () => {
    const before = await redis.dbsize();
    await expect(
      producer.enqueue('email', 'verification-code', { ...code, to: 'nobody' }),
    ).rejects.toBeInstanceOf(InvalidJobPayloadError);
    expect(await redis.dbsize()).toBe(before);
  });
});
