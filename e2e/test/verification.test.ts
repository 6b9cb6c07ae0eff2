/**
 * Email verification codes and password resets through the gateway: what is stored (hashes, with TTLs),
 * what is enqueued (a valid job of the email queue, for the notifier to send), single use, attempt
 * limits, and a 503 that leaves nothing behind when the queue is down.
 */
import { createHash } from 'node:crypto';
import { payloadProblem } from '@atoll/jobs';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit';
import { type Job, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { redisOf, startTestStack } from './helpers.ts';

describe('verification codes and password resets', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let sessionRedis: RoleCheckedRedis;
  let queueRedis: RoleCheckedRedis;
  let email: Queue;
  let keys: ReturnType<typeof createKeys>;
  let n = 0;
  const register = async () => {
    n += 1;
    const user = { username: `ver${n}`, email: `ver${n}@example.com`, password: 'correct horse' };
    const res = await api('POST', '/api/users', { body: { user } });
    return { ...user, token: res.body.user.token as string };
  };
  const jobsFor = async (name: string, to: string): Promise<Job[]> =>
    (await email.getJobs(['waiting', 'delayed', 'prioritized'])).filter(
      (j) => j.name === name && j.data.to === to,
    );

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('verification'));
    api = apiClient(stack.gatewayUrl);
    keys = createKeys(stack.envOf('auth').REDIS_KEY_PREFIX as string);
    sessionRedis = await redisOf(stack, 'session');
    queueRedis = await redisOf(stack, 'queue', 'worker');
    email = new Queue('email', { connection: queueRedis, prefix: keys.bullPrefix() });
  }, 90_000);
  afterAll(async () => {
    await email.close();
    await closeRedis(sessionRedis);
    await closeRedis(queueRedis);
    await dispose();
  });

  it('sends a 6-digit code as a valid email job, keeps only its hash, and accepts it once', async () => {
    const ada = await register();
    const sent = await api('POST', '/api/user/verification', { token: ada.token });
    expect(sent.status).toBe(202);
    const [job] = await jobsFor('verification-code', ada.email);
    expect(job).toBeDefined();
    expect(payloadProblem('email', 'verification-code', job?.data)).toBeNull();
    const code = job?.data.code as string;
    expect(code).toMatch(/^\d{6}$/);
    const record = await sessionRedis.hgetall(keys.verificationCode(job?.data.userId));
    expect(JSON.stringify(record)).not.toContain(code);
    expect(await sessionRedis.pttl(keys.verificationCode(job?.data.userId))).toBeGreaterThan(14 * 60_000);

    const wrong = await api('POST', '/api/user/verification/confirm', {
      token: ada.token,
      body: { verification: { code: code === '000000' ? '111111' : '000000' } },
    });
    expect(wrong.status).toBe(422);
    expect(wrong.body.errors).toEqual({ code: ['is invalid'] });
    const right = await api('POST', '/api/user/verification/confirm', {
      token: ada.token,
      body: { verification: { code } },
    });
    expect(right.status).toBe(200);
    expect(right.body.user.email).toBe(ada.email);
    const again = await api('POST', '/api/user/verification/confirm', {
      token: ada.token,
      body: { verification: { code } },
    });
    expect(again.status).toBe(422);
    const resend = await api('POST', '/api/user/verification', { token: ada.token });
    expect(resend.status).toBe(409);
    expect(resend.body.errors).toEqual({ email: ['is already verified'] });
  });

  it('allows 5 attempts per code, then the code is gone even if the right one comes next', async () => {
    const bob = await register();
    await api('POST', '/api/user/verification', { token: bob.token });
    const code = (await jobsFor('verification-code', bob.email))[0]?.data.code as string;
    const wrongCode = code === '999999' ? '888888' : '999999';
    for (let i = 0; i < 5; i += 1) {
      const res = await api('POST', '/api/user/verification/confirm', {
        token: bob.token,
        body: { verification: { code: wrongCode } },
      });
      expect(res.status).toBe(422);
    }
    const late = await api('POST', '/api/user/verification/confirm', {
      token: bob.token,
      body: { verification: { code } },
    });
    expect(late.status).toBe(422);
    expect(late.body.errors).toEqual({ code: ['has expired or was used up, ask for a new one'] });
  });

  it('resets a password with a single-use link token; every session ends', async () => {
    const carol = await register();
    const unknown = await api('POST', '/api/users/password-reset', {
      body: { user: { email: 'nobody@example.com' } },
    });
    expect(unknown.status).toBe(202);
    expect(await jobsFor('password-reset', 'nobody@example.com')).toEqual([]);

    const asked = await api('POST', '/api/users/password-reset', {
      body: { user: { email: carol.email.toUpperCase() } },
    });
    expect(asked.status).toBe(202);
    const [job] = await jobsFor('password-reset', carol.email);
    expect(payloadProblem('email', 'password-reset', job?.data)).toBeNull();
    const token = job?.data.token as string;
    const stored = keys.passwordReset(createHash('sha256').update(token).digest('hex'));
    expect(await sessionRedis.get(stored)).toBe(job?.data.userId);
    expect(await sessionRedis.pttl(stored)).toBeGreaterThan(29 * 60_000);

    const short = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'short' } },
    });
    expect(short.status).toBe(422);
    const done = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'brand new pass' } },
    });
    expect(done.status).toBe(204);
    expect((await api('GET', '/api/user', { token: carol.token })).status).toBe(401);
    const reused = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'another pass!' } },
    });
    expect(reused.status).toBe(422);
    expect(reused.body.errors).toEqual({ token: ['is invalid or has expired'] });
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: carol.email, password: 'brand new pass' } },
    });
    expect(login.status).toBe(200);
  });

  it('answers 503 QUEUE_UNAVAILABLE and keeps no code when redis-queue is down', async () => {
    const dan = await register();
    await stack.redis.queue.stop();
    try {
      const res = await api('POST', '/api/user/verification', { token: dan.token });
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        errors: { queue: ['is unavailable, nothing was sent; try again shortly'] },
        code: 'QUEUE_UNAVAILABLE',
      });
      const userId = (await sessionRedis.keys(`${keys.prefix}:verify:*`)).length;
      expect(userId).toBe(0);
    } finally {
      await stack.redis.queue.restart();
    }
  });
});
