/**
 * The notifier's processing: the BullMQ workers of the four queues it owns (notifications fan-out,
 * security email, email, digests), the digest job schedulers, and the consumer that keeps `recipients` from the user
 * events. They share one worker-mode connection to redis-queue (it waits through an outage instead of
 * failing); producing (email jobs from the fan-out, welcome and digest emails) goes through the app's
 * fail-fast producer client, so a failed enqueue fails the job, which is then retried.
 *
 * Security email (codes, reset links, email-change notices) has a worker, a rate limiter and SMTP
 * connections of its own, so a flood of notification mail cannot hold it back.
 *
 * Shutdown: `worker.close()` stops taking jobs and waits for the active ones to finish, all within the
 * service's grace period (SHUTDOWN_GRACE_MS); a job still running when the process is killed anyway
 * is found stalled by another notifier (or this one, restarted) and run again: its handlers are
 * idempotent.
 */
import { hostname } from 'node:os';
import { StreamConsumer } from '@atoll/events';
import { createWorker, Producer, removeRetiredJobs } from '@atoll/jobs';
import { LockClient } from '@atoll/lock';
import { closeRedis, connectRedis, duplicateClient } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { dbOf } from '@atoll/service-kit';
import type { Queue, Worker } from 'bullmq';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { NotifierConfig } from './config.ts';
import type { NotifierDatabase } from './db.ts';
import { digestHandlers, keepDigestsScheduled } from './digest/digest.ts';
import { emailHandlers, securityEmailHandlers } from './email/email.handlers.ts';
import { Mailer } from './email/mailer.ts';
import { LivePublisher } from './live/publisher.ts';
import { fanOutHandlers } from './notifications/fanout.ts';
import { MailCaps } from './notifications/mail-caps.ts';
import { applyUserEvent } from './recipients/recipients.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** The BullMQ queues the notifier owns, for the admin routes. */
    queues: Queue[];
  }
}

const workersPlugin: FastifyPluginAsync<{ config: NotifierConfig }> = async (app, { config }) => {
  const keys = createKeys(config.keyPrefix);
  const db = dbOf<NotifierDatabase>(app);
  const producerRedis = app.redis.queue!;
  const connection = await connectRedis({
    url: config.redis.queue,
    role: 'queue',
    use: 'worker',
    name: 'notifier:workers',
    log: app.log,
  });
  const producer = new Producer(producerRedis, keys);
  const mailer = new Mailer({ smtpUrl: config.smtpUrl, from: config.mailFrom, db });
  const securityMailer = new Mailer({ smtpUrl: config.smtpUrl, from: config.mailFrom, db });
  const live = new LivePublisher(app.redis.session!, keys.liveNotifications());
  const locks = new LockClient(producerRedis, keys);
  const common = {
    connection,
    keys,
    concurrency: config.workers.concurrency,
    lockDurationMs: config.workers.lockDurationMs,
    stalledIntervalMs: config.workers.stalledIntervalMs,
    autorun: false,
  };
  // Whose actions may cause notification mail, at once and in the digest alike (mail-rules.ts).
  const { minActorAgeMs } = config.mailCaps;
  const workers: Worker[] = [
    createWorker(
      'notifications',
      fanOutHandlers({
        db,
        producer,
        live,
        caps: new MailCaps(producerRedis, keys, config.mailCaps),
        minActorAgeMs,
        log: app.log.child({ component: 'fanout' }),
      }),
      common,
    ),
    createWorker(
      'security-email',
      securityEmailHandlers({
        mailer: securityMailer,
        publicUrl: config.publicUrl,
        redis: app.redis.session!,
        keys,
      }),
      { ...common, concurrency: config.securityEmail.concurrency, limiter: config.securityEmail.rate },
    ),
    createWorker('email', emailHandlers(mailer, config.publicUrl), { ...common, limiter: config.emailRate }),
    createWorker('digests', digestHandlers({ db, producer, locks, log: app.log, minActorAgeMs }), {
      ...common,
      concurrency: 1,
    }),
  ];
  for (const worker of workers) {
    worker.on('failed', (job, err) =>
      app.log.warn(
        {
          queue: worker.name,
          job: job?.id,
          name: job?.name,
          attempt: job?.attemptsMade,
          err: { message: err.message },
        },
        'job failed',
      ),
    );
    worker.on('error', (err) =>
      app.log.warn({ queue: worker.name, err: { message: err.message } }, 'worker error'),
    );
  }
  const consumer = new StreamConsumer({
    redis: duplicateClient(connection),
    stream: keys.userEvents(),
    group: 'notifier-recipients',
    consumer: `notifier-${hostname()}-${process.pid}`,
    handle: (event) => applyUserEvent(db, producer, event),
    log: app.log.child({ component: 'recipients' }),
  });
  app.decorate(
    'queues',
    (['notifications', 'security-email', 'email', 'digests'] as const).map((q) => producer.queueOf(q)),
  );

  let stopScheduling = () => {};
  app.addHook('onReady', async () => {
    stopScheduling = await keepDigestsScheduled(producer.queueOf('digests'), config.digestCron, app.log);
    for (const worker of workers) void worker.run();
    consumer.start();
    // Jobs an older auth left with a code or reset token in them go (in the background: a SCAN).
    void removeRetiredJobs(producerRedis, keys, 'email').then(
      (removed) => {
        if (removed > 0) app.log.info({ removed }, 'removed retired email jobs that carried a secret');
      },
      (err: Error) => app.log.warn({ err: { message: err.message } }, 'could not remove retired email jobs'),
    );
  });
  app.addHook('onClose', async () => {
    stopScheduling();
    await Promise.all([...workers.map((w) => w.close()), consumer.stop()]);
    mailer.close();
    securityMailer.close();
    await producer.close();
    await closeRedis(connection);
  });
};

export const workers = fp(workersPlugin, {
  name: 'notifier-workers',
  dependencies: ['@atoll/db', '@atoll/redis-roles'],
});
