import { randomBytes, randomUUID } from 'node:crypto';
import { createDb, type Kysely, migrateDatabase } from '@atoll/db';
import { type EventVersions, publishUserEvent } from '@atoll/events';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { base, database, fastifyOptions, redisRoles } from '@atoll/service-kit';
import { RedisServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrations, SCHEMA } from '../src/migrations/index.ts';
import { applyUserEvent } from '../src/profiles/profile.projection.ts';
import { ensureProfile } from '../src/profiles/profile.repository.ts';
import type { ProfilesDatabase } from '../src/profiles/profile.table.ts';
import { applyWhileAvailable, profileProjection } from '../src/profiles/projection.plugin.ts';

const silent = { info() {}, warn() {}, error() {} };

const at = (iso: string) => new Date(iso).toISOString();
const profile = (over: Partial<EventVersions['user.updated'][1]> = {}): EventVersions['user.updated'][1] => ({
  userId: randomUUID(),
  username: `u${randomBytes(4).toString('hex')}`,
  bio: null,
  image: null,
  occurredAt: at('2026-11-22T10:00:00.000Z'),
  ...over,
});
const registered = (p: EventVersions['user.updated'][1]) => ({
  type: 'user.registered' as const,
  version: 1,
  payload: { ...p, email: `${p.username}@example.com` },
});
const updated = (p: EventVersions['user.updated'][1]) => ({
  type: 'user.updated' as const,
  version: 1,
  payload: p,
});

async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`condition not met within ${timeoutMs} ms: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the profiles projection on real PostgreSQL and redis-queue', () => {
  let testDb: TestDatabase;
  let queue: RedisServer;
  let db: Kysely<ProfilesDatabase>;
  const row = (userId: string) =>
    db.selectFrom('profiles').selectAll().where('user_id', '=', userId).executeTakeFirst();

  beforeAll(async () => {
    [testDb, queue] = await Promise.all([testDatabase('content'), RedisServer.start('queue')]);
    await migrateDatabase(testDb.url, SCHEMA, migrations);
    db = createDb<ProfilesDatabase>({ url: testDb.url, schema: SCHEMA });
  });
  afterAll(async () => {
    await db.destroy();
    await Promise.all([queue.dispose(), testDb.drop()]);
  });

  describe('applyUserEvent', () => {
    it('inserts a registered account and applies a newer update', async () => {
      const ada = profile({ username: 'ada' });
      await applyUserEvent(db, registered(ada));
      expect(await row(ada.userId)).toEqual({
        user_id: ada.userId,
        username: 'ada',
        bio: null,
        image: null,
        updated_at: new Date(ada.occurredAt),
      });
      const later = {
        ...ada,
        bio: 'math',
        image: 'https://example.com/ada.png',
        occurredAt: at('2026-11-22T11:00:00Z'),
      };
      await applyUserEvent(db, updated(later));
      expect(await row(ada.userId)).toMatchObject({
        username: 'ada',
        bio: 'math',
        image: 'https://example.com/ada.png',
        updated_at: new Date(later.occurredAt),
      });
    });

    it('ignores an older event arriving after a newer one, and a replay', async () => {
      const v1 = profile();
      const v2 = { ...v1, username: `${v1.username}-renamed`, occurredAt: at('2026-11-22T12:00:00Z') };
      // The update arrives first (say, the registration was retried), then the registration.
      await applyUserEvent(db, updated(v2));
      await applyUserEvent(db, registered(v1));
      const expected = { username: v2.username, updated_at: new Date(v2.occurredAt) };
      expect(await row(v1.userId)).toMatchObject(expected);
      // At-least-once delivery: the same events again.
      await applyUserEvent(db, updated(v2));
      await applyUserEvent(db, registered(v1));
      expect(await row(v1.userId)).toMatchObject(expected);
      expect(
        await db.selectFrom('profiles').select('user_id').where('user_id', '=', v1.userId).execute(),
      ).toHaveLength(1);
    });

    it('says whether what readers see changed, whatever the order the events come in', async () => {
      const bo = profile({ username: 'bo' });
      // A first article wrote the row from the gateway's identity before the registration arrived.
      await ensureProfile(db, bo.userId, 'bo');
      expect(await applyUserEvent(db, registered(bo))).toEqual({ changed: false });
      const withBio = { ...bo, bio: 'ships', occurredAt: at('2026-11-22T10:10:00Z') };
      const emailOnly = { ...withBio, occurredAt: at('2026-11-22T10:20:00Z') };
      // The newest first: it changes the bio; the older one with the bio, and a replay, change nothing.
      expect(await applyUserEvent(db, updated(emailOnly))).toEqual({ changed: true });
      expect(await applyUserEvent(db, updated(withBio))).toEqual({ changed: false });
      expect(await applyUserEvent(db, registered(bo))).toEqual({ changed: false });
      expect(await applyUserEvent(db, updated(emailOnly))).toEqual({ changed: false });
      expect(await row(bo.userId)).toMatchObject({
        bio: 'ships',
        updated_at: new Date(emailOnly.occurredAt),
      });
      const renamed = { ...emailOnly, username: 'bo2', occurredAt: at('2026-11-22T10:30:00Z') };
      expect(await applyUserEvent(db, updated(renamed))).toEqual({ changed: true });
      const fresh = profile();
      expect(await applyUserEvent(db, registered(fresh))).toEqual({ changed: true });
    });

    it('fails on a username a stale row still holds, and succeeds once that row has caught up', async () => {
      const old = profile({ username: 'grace' });
      await applyUserEvent(db, registered(old));
      // "grace" renamed herself, then someone else took the name; the second event arrives first.
      const taker = profile({ username: 'Grace', occurredAt: at('2026-11-22T10:05:00Z') });
      await expect(applyUserEvent(db, registered(taker))).rejects.toThrow(/profiles_username_key/);
      await applyUserEvent(
        db,
        updated({ ...old, username: 'grace-h', occurredAt: at('2026-11-22T10:01:00Z') }),
      );
      await applyUserEvent(db, registered(taker)); // the consumer's retry
      expect(await row(taker.userId)).toMatchObject({ username: 'Grace' });
    });
  });

  describe('the projection plugin', () => {
    let producer: RoleCheckedRedis;
    const keyPrefix = `ct${randomBytes(4).toString('hex')}`;
    const keys = createKeys(keyPrefix);
    const buildApp = async () => {
      const app = Fastify(fastifyOptions({ service: 'content', logLevel: 'silent', requestIds: 'internal' }));
      await app.register(base);
      await app.register(redisRoles, { service: 'content', urls: { queue: queue.url } });
      await app.register(database, { url: testDb.url, schema: SCHEMA });
      await app.register(profileProjection, { keyPrefix, redisQueueUrl: queue.url, instanceId: 'test' });
      await app.ready();
      return app;
    };
    /** XINFO GROUPS for content's group, as an object (the reply is a flat field/value list). */
    const group = async () => {
      const groups = (await producer.xinfo('GROUPS', keys.userEvents())) as unknown[][];
      const fields = groups.find((g) => g[1] === 'content-profiles') ?? [];
      return Object.fromEntries(fields.flatMap((v, i) => (i % 2 === 0 ? [[v, fields[i + 1]]] : [])));
    };
    beforeAll(async () => {
      producer = await connectRedis({
        url: queue.url,
        role: 'queue',
        use: 'producer',
        name: 't',
        log: silent,
      });
    });
    afterAll(async () => {
      await closeRedis(producer);
    });

    it('applies published user events to content.profiles, and closes promptly', async () => {
      // Published before the app starts: a new group reads the stream from the beginning.
      const linus = profile({ occurredAt: new Date().toISOString() });
      const account = { email: 'linus@example.com', emailVerified: false };
      await publishUserEvent(producer, keys, 'user.registered', { ...linus, ...account });
      const app = await buildApp();
      try {
        await until(
          () => row(linus.userId),
          (r) => r?.username === linus.username,
        );
        const renamed = {
          ...linus,
          username: `${linus.username}-t`,
          bio: 'kernel',
          occurredAt: new Date(Date.now() + 1000).toISOString(),
        };
        await publishUserEvent(producer, keys, 'user.updated', { ...renamed, ...account });
        // An older event published after it (out of order) must not win.
        const stale = await publishUserEvent(producer, keys, 'user.updated', {
          ...linus,
          ...account,
          bio: 'stale',
        });
        await until(
          () => group(),
          (g) => g['last-delivered-id'] === stale && g.pending === 0,
        );
        expect(await row(linus.userId)).toMatchObject({
          username: renamed.username,
          bio: 'kernel',
          updated_at: new Date(renamed.occurredAt),
        });
        const consumers = (await producer.xinfo(
          'CONSUMERS',
          keys.userEvents(),
          'content-profiles',
        )) as string[][];
        expect(consumers.map((c) => c[1])).toEqual(['content-test']);
      } finally {
        const started = Date.now();
        await app.close();
        expect(Date.now() - started).toBeLessThan(1000);
      }
    });
  });
});

describe('applyWhileAvailable', () => {
  const unreachable = () =>
    Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  it('waits out an unreachable database and applies the same event once it answers', async () => {
    let calls = 0;
    await applyWhileAvailable(
      async () => {
        calls += 1;
        if (calls < 3) throw unreachable();
      },
      () => false,
    );
    expect(calls).toBe(3);
  });

  it('fails the delivery at once for any other error, and when the app is stopping', async () => {
    await expect(
      applyWhileAvailable(
        async () => Promise.reject(new Error('duplicate key')),
        () => false,
      ),
    ).rejects.toThrow('duplicate key');
    await expect(
      applyWhileAvailable(
        async () => Promise.reject(unreachable()),
        () => true,
      ),
    ).rejects.toThrow('ECONNREFUSED');
  });
});
