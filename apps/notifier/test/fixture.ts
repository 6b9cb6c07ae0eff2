/**
 * A notifier in-process (`buildApp`) on its own real redis-queue and redis-session servers, PostgreSQL
 * database and SMTP server, with the clients a test needs to feed it: the tests' fixture.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { migrateDatabase } from '@atoll/db';
import { type EventPayloads, encodeEvent } from '@atoll/events';
import { type JobPayloads, Producer } from '@atoll/jobs';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys, type Keys } from '@atoll/redis-keys';
import { dbOf } from '@atoll/service-kit';
import {
  type IdentityKeys,
  identityKeyPair,
  RedisServer,
  SmtpTestServer,
  testDatabase,
} from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import type { NotifierDatabase } from '../src/db.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

const silent = { info() {}, warn() {}, error() {} };

export interface TestUser {
  userId: string;
  username: string;
  email: string;
}

export interface NotifierFixture {
  app: FastifyInstance;
  /** The notifier's own database, to look at what it wrote. */
  db: Kysely<NotifierDatabase>;
  smtp: SmtpTestServer;
  producer: Producer;
  queueRedis: RoleCheckedRedis;
  sessionRedis: RoleCheckedRedis;
  keys: Keys;
  /** The gateway's key pair identity assertions are signed with (for requests to the API). */
  identityKeys: IdentityKeys;
  /** The Redis servers' URLs (for a test's own clients, e.g. a subscriber). */
  urls: { queue: string; session: string };
  /** Closes the app (its workers finish their jobs) and starts a new one on the same servers. */
  restart(): Promise<FastifyInstance>;
  /** A user with a fresh id and `<name>@example.com`. */
  user(name: string): TestUser;
  /** Appends a user event to the Stream the notifier reads. */
  event<T extends keyof EventPayloads>(type: T, payload: EventPayloads[T]): Promise<unknown>;
  /** A notification job (the kind content enqueues) from `from` to `to` (a follow has no excerpt). */
  notify(
    type: 'comment' | 'mention' | 'follow',
    from: TestUser,
    to: TestUser,
    excerpt: string,
  ): Promise<string>;
  close(): Promise<void>;
}

/**
 * Starts the fixture; `env` adds to or overrides the notifier's configuration. `ready: false` leaves the
 * app (and its workers) not started yet, for a test to queue work first.
 */
export async function startNotifier(
  env: Record<string, string> = {},
  opts: { ready?: boolean } = {},
): Promise<NotifierFixture> {
  const [queue, session, database, smtp] = await Promise.all([
    RedisServer.start('queue'),
    RedisServer.start('session'),
    testDatabase('notifier'),
    SmtpTestServer.start(),
  ]);
  await migrateDatabase(database.url, SCHEMA, migrations);
  const prefix = `n${randomBytes(4).toString('hex')}`;
  const keys = createKeys(prefix);
  const identityKeys = identityKeyPair();
  const config = loadConfig({
    LOG_LEVEL: 'silent',
    IDENTITY_PUBLIC_KEYS: identityKeys.publicKeyText,
    REDIS_KEY_PREFIX: prefix,
    DATABASE_URL: database.url,
    REDIS_QUEUE_URL: queue.url,
    REDIS_SESSION_URL: session.url,
    SMTP_URL: smtp.url,
    PUBLIC_URL: 'http://atoll.test',
    ...env,
  });
  const app = await buildApp(config);
  const queueRedis = await connectRedis({
    url: queue.url,
    role: 'queue',
    use: 'producer',
    name: 'q',
    log: silent,
  });
  const sessionRedis = await connectRedis({
    url: session.url,
    role: 'session',
    use: 'producer',
    name: 's',
    log: silent,
  });
  const producer = new Producer(queueRedis, keys);
  if (opts.ready !== false) await app.ready();
  let jobs = 0;
  const fixture: NotifierFixture = {
    app,
    db: dbOf<NotifierDatabase>(app),
    smtp,
    producer,
    queueRedis,
    sessionRedis,
    keys,
    identityKeys,
    urls: { queue: queue.url, session: session.url },
    restart: async () => {
      await fixture.app.close();
      fixture.app = await buildApp(config);
      await fixture.app.ready();
      fixture.db = dbOf<NotifierDatabase>(fixture.app);
      return fixture.app;
    },
    user: (name) => ({ userId: randomUUID(), username: name, email: `${name}@example.com` }),
    event: (type, payload) => queueRedis.xadd(keys.userEvents(), '*', ...encodeEvent(type, payload)),
    notify: (type, from, to, excerpt) => {
      jobs += 1;
      const follow: JobPayloads['notifications']['follow'] = {
        v: 1,
        actorId: from.userId,
        actorUsername: from.username,
        recipientId: to.userId,
        occurredAt: new Date().toISOString(),
      };
      const jobId = `${type}-${jobs}`;
      if (type === 'follow') return producer.enqueue('notifications', type, follow, { jobId });
      const payload: JobPayloads['notifications']['comment'] = {
        ...follow,
        articleSlug: 'a-post',
        articleTitle: 'A post',
        commentId: jobs,
        excerpt,
      };
      return producer.enqueue('notifications', type, payload, { jobId });
    },
    close: async () => {
      await fixture.app.close();
      await producer.close();
      await closeRedis(queueRedis);
      await closeRedis(sessionRedis);
      await smtp.stop();
      await Promise.all([queue.dispose(), session.dispose(), database.drop()]);
    },
  };
  return fixture;
}

/** Polls until `ok` or the time is up; returns the last value read. */
export async function until<T>(
  read: () => Promise<T> | T,
  ok: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 50));
  }
}
