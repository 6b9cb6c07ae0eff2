/**
 * Security email on its own queue, worker and rate limiter: with 1,000 notification emails queued
 * ahead of it (20 s of mail at the default 50/s), a password-reset email still arrives within seconds.
 * In-process notifier on real redis-queue and redis-session servers, PostgreSQL and an SMTP server.
 */
import { randomBytes } from 'node:crypto';
import { migrateDatabase } from '@atoll/db';
import { Producer } from '@atoll/jobs';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer, SmtpTestServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('security email beside a flood of notification email', () => {
  let queue: RedisServer;
  let session: RedisServer;
  let database: TestDatabase;
  let smtp: SmtpTestServer;
  let app: FastifyInstance;
  let queueRedis: RoleCheckedRedis;
  let sessionRedis: RoleCheckedRedis;
  let producer: Producer;
  const prefix = `s${randomBytes(4).toString('hex')}`;
  const keys = createKeys(prefix);

  beforeAll(async () => {
    [queue, session, database, smtp] = await Promise.all([
      RedisServer.start('queue'),
      RedisServer.start('session'),
      testDatabase('notifier'),
      SmtpTestServer.start(),
    ]);
    await migrateDatabase(database.url, SCHEMA, migrations);
    app = await buildApp(
      loadConfig({
        LOG_LEVEL: 'silent',
        IDENTITY_SECRET: randomBytes(32).toString('hex'),
        REDIS_KEY_PREFIX: prefix,
        DATABASE_URL: database.url,
        REDIS_QUEUE_URL: queue.url,
        REDIS_SESSION_URL: session.url,
        SMTP_URL: smtp.url,
        PUBLIC_URL: 'http://atoll.test',
      }),
    );
    queueRedis = await connectRedis({
      url: queue.url,
      role: 'queue',
      use: 'producer',
      name: 'q',
      log: silent,
    });
    sessionRedis = await connectRedis({
      url: session.url,
      role: 'session',
      use: 'producer',
      name: 's',
      log: silent,
    });
    producer = new Producer(queueRedis, keys);
  }, 60_000);
  afterAll(async () => {
    await producer.queueOf('email').pause(); // no need to send the rest of the flood
    await app?.close();
    await producer.close();
    await closeRedis(queueRedis);
    await closeRedis(sessionRedis);
    await smtp.stop();
    await Promise.all([queue.dispose(), session.dispose(), database.drop()]);
  });

  it('mails a password reset within 5 s while 1,000 notification emails wait', async () => {
    await producer.enqueueMany(
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
    await app.ready(); // the workers start with the backlog already there
    const token = randomBytes(32).toString('base64url');
    const to = 'victim@example.com';
    const started = Date.now();
    await sessionRedis.set(keys.mailSecret('password-reset-flood'), token, 'PX', 60_000);
    await producer.enqueue(
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
    const [mail] = await smtp.waitFor(to, 1, 10_000);
    const elapsed = Date.now() - started;
    const notificationsSent = smtp.received.length - 1;
    console.info(
      `reset mail after ${elapsed} ms; ${notificationsSent} of 1000 notification mails sent by then`,
    );
    expect(mail?.text).toContain(`token=${token}`);
    expect(elapsed).toBeLessThan(5000);
    expect(notificationsSent).toBeLessThan(1000); // the flood was still queued when the reset went out
  }, 30_000);
});
