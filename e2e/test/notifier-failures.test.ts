/**
 * The notifier killed mid-job: a worker SIGKILLed while its email is being handed to the SMTP server.
 * The job's lock runs out, another notifier finds it stalled and runs it again, and the email arrives
 * exactly once (the killed attempt's claim in PostgreSQL died with its connection; see
 * apps/notifier/src/email/mailer.ts).
 */
import { Producer } from '@atoll/jobs';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, redisOf, startTestStack } from './helpers.ts';

describe('notifier killed mid-job', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let queueRedis: RoleCheckedRedis;
  let producer: Producer;
  let restarted: ServiceProcess | undefined;

  beforeAll(async () => {
    // Short job locks so a dead worker's job is found stalled within seconds, not 30 s.
    ({ stack, dispose } = await startTestStack('notifier-kill', {
      JOB_LOCK_MS: '2000',
      JOB_STALLED_INTERVAL_MS: '1000',
    }));
    queueRedis = await redisOf(stack, 'queue');
    producer = new Producer(queueRedis, createKeys(stack.envOf('notifier').REDIS_KEY_PREFIX as string));
  }, 90_000);
  afterAll(async () => {
    await restarted?.stop();
    await producer.close();
    await closeRedis(queueRedis);
    await dispose();
  });

  it('recovers the job as stalled and the email is received exactly once', async () => {
    const smtp = stack.smtp!;
    const to = 'killed@example.com';
    const release = smtp.hold(); // the SMTP server has the message but has not accepted it yet
    await producer.enqueue(
      'email',
      'welcome',
      { v: 1, userId: 'u-k', to, username: 'k' },
      { jobId: 'welcome-k' },
    );
    const email = producer.queueOf('email');
    expect(await eventually(async () => (await email.getJobState('welcome-k')) === 'active')).toBe(true);
    expect(await eventually(async () => smtp.held >= 1)).toBe(true); // the message is at the SMTP server, held
    const closedBefore = smtp.sessionsClosed;
    await stack.services.notifier.stop('SIGKILL');
    // Release only once the SMTP server has seen the killed sender's connection end.
    expect(await eventually(async () => smtp.sessionsClosed > closedBefore)).toBe(true);
    release();
    expect(await eventually(async () => smtp.abandoned >= 1, 20_000)).toBe(true);
    expect(smtp.to(to)).toEqual([]);

    restarted = await ServiceProcess.start('notifier', stack.envOf('notifier'));
    expect(await eventually(async () => smtp.to(to).length === 1, 20_000)).toBe(true);
    expect(await eventually(async () => (await email.getJobState('welcome-k')) === 'completed')).toBe(true);
    const job = await email.getJob('welcome-k');
    expect(job?.stalledCounter).toBeGreaterThanOrEqual(1);
    await new Promise((r) => setTimeout(r, 1000));
    expect(smtp.to(to)).toHaveLength(1);
  }, 60_000);
});
