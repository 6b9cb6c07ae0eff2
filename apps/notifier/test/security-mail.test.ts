/**
 * Security email on its own queue, worker and rate limiter: with 1,000 notification emails queued
 * ahead of it (20 s of mail at the default 50/s), a password-reset email still arrives within seconds.
 * In-process notifier on real redis-queue and redis-session servers, PostgreSQL and an SMTP server.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NotifierFixture, startNotifier } from './fixture.ts';

describe('security email beside a flood of notification email', () => {
  let n: NotifierFixture;
  beforeAll(async () => {
    n = await startNotifier({}, { ready: false });
  }, 60_000);
  afterAll(async () => {
    await n.producer.queueOf('email').pause(); // no need to send the rest of the flood
    await n.close();
  });

  it('mails a password reset within 5 s while 1,000 notification emails wait', async () => {
    await n.producer.enqueueMany(
      'email',
      Array.from({ length: 1000 }, (_, i) => ({
        name: 'notification' as const,
        jobId: `flood-${i}`,
        payload: {
          v: 1 as const,
          notificationId: i + 1,
          to: `flood${i % 50}@example.com`,
          username: 'flooded',
          type: 'mention' as const,
          actorUsername: 'loud',
          articleSlug: 'a',
          articleTitle: 'A',
          excerpt: 'hey',
        },
      })),
    );
    await n.app.ready(); // the workers start with the backlog already there
    const token = randomBytes(32).toString('base64url');
    const to = 'victim@example.com';
    const started = Date.now();
    await n.sessionRedis.set(n.keys.mailSecret('password-reset-flood'), token, 'PX', 60_000);
    await n.producer.enqueue(
      'security-email',
      'password-reset',
      {
        v: 2,
        userId: 'u-v',
        to,
        username: 'victim',
        expiresAt: new Date(Date.now() + 1_800_000).toISOString(),
      },
      { jobId: 'password-reset-flood' },
    );
    const [mail] = await n.smtp.waitFor(to, 1, 10_000);
    const elapsed = Date.now() - started;
    const notificationsSent = n.smtp.received.length - 1;
    console.info(
      `reset mail after ${elapsed} ms; ${notificationsSent} of 1000 notification mails sent by then`,
    );
    expect(mail?.text).toContain(`token=${token}`);
    expect(elapsed).toBeLessThan(5000);
    expect(notificationsSent).toBeLessThan(1000); // the flood was still queued when the reset went out
  }, 30_000);
});
