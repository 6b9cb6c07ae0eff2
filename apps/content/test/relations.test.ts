/**
 * The relation keys behind the `favorited` and `following` flags, on a real redis-server (cache.conf)
 * and PostgreSQL: rebuilt when missing, kept in step with writes, exact even when a write races a
 * rebuild, and answered from PostgreSQL while redis-cache is away.
 */
import { randomUUID } from 'node:crypto';
import { createDb, type Kysely, migrateDatabase } from '@atoll/db';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import fc from 'fast-check';
import type { KyselyPlugin, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContentDatabase } from '../src/db.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';
import { Relations } from '../src/relations/relations.ts';

const silent = { info() {}, warn() {}, error() {} };

/** Holds every query's result until released: a reader paused right after its snapshot was taken. */
class Gate implements KyselyPlugin {
  private waiting: Promise<void> | null = null;
  private open: () => void = () => {};
  close() {
    this.waiting = new Promise((r) => {
      this.open = r;
    });
  }
  release() {
    this.open();
    this.waiting = null;
  }
  transformQuery<T>(args: { node: T }) {
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs) {
    if (this.waiting) await this.waiting;
    return args.result;
  }
}

describe('relation keys on redis-cache', () => {
  let testDb: TestDatabase;
  let server: RedisServer;
  let db: Kysely<ContentDatabase>;
  let redis: RoleCheckedRedis;
  const keys = createKeys(`r${randomUUID().slice(0, 6)}`);
  const relations = (database: Kysely<ContentDatabase> = db) =>
    new Relations({ db: database, redis, keys, log: silent });

  const user = async () => {
    const id = randomUUID();
    await db
      .insertInto('profiles')
      .values({ user_id: id, username: `u${id.slice(0, 8)}`, bio: null, image: null, updated_at: new Date() })
      .execute();
    return id;
  };
  const article = async (authorId: string) =>
    (
      await db
        .insertInto('articles')
        .values({ slug: randomUUID(), title: 't', description: 'd', body: 'b', author_id: authorId })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
  const favorite = (userId: string, articleId: string) =>
    db.insertInto('favorites').values({ user_id: userId, article_id: articleId }).execute();

  beforeAll(async () => {
    [testDb, server] = await Promise.all([testDatabase('relations'), RedisServer.start('cache')]);
    await migrateDatabase(testDb.url, SCHEMA, migrations);
    db = createDb<ContentDatabase>({ url: testDb.url, schema: SCHEMA });
    redis = await connectRedis({
      url: server.url,
      role: 'cache',
      use: 'producer',
      name: 'test',
      log: silent,
    });
  });
  afterAll(async () => {
    await closeRedis(redis);
    await db.destroy();
    await server.dispose();
    await testDb.drop();
  });

  it('rebuilds a missing set from PostgreSQL with a TTL, then answers from it alone', async () => {
    const [reader, author] = [await user(), await user()];
    const [a1, a2] = [await article(author), await article(author)];
    await favorite(reader, a1);
    const r = relations();
    expect([...(await r.favoritedAmong(reader, [a1, a2]))]).toEqual([a1]);
    const key = keys.favoritesOf(reader);
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    expect((await redis.smembers(key)).sort()).toEqual(['', a1].sort()); // '' marks it complete
    // From here on the set alone answers: a row PostgreSQL gains behind its back is not seen...
    await favorite(reader, a2);
    expect([...(await r.favoritedAmong(reader, [a1, a2]))]).toEqual([a1]);
    // ...which is why every write goes through `favorited` after its commit (the set goes, and is rebuilt).
    await r.favorited(reader);
    expect([...(await r.favoritedAmong(reader, [a1, a2]))].sort()).toEqual([a1, a2].sort());
  });

  it('caches "follows nobody" as an empty set, so such a reader costs no query either', async () => {
    const reader = await user();
    const r = relations();
    expect((await r.followedAmong(reader, [randomUUID()])).size).toBe(0);
    expect(await redis.exists(keys.followingOf(reader))).toBe(1);
  });

  it('stays exact when a write commits while a rebuild is loading (the rebuild is not stored)', async () => {
    const [reader, author] = [await user(), await user()];
    const a = await article(author);
    const gate = new Gate();
    const slowReader = relations(db.withPlugin(gate));
    const writer = relations();

    gate.close();
    const reading = slowReader.favoritedAmong(reader, [a]); // set missing: loads, then pauses
    await new Promise((r) => setTimeout(r, 100));
    await favorite(reader, a); // the write commits after the reader's snapshot...
    await writer.favorited(reader); // ...and applies itself: the set is absent, only the version moves
    gate.release();
    expect((await reading).has(a)).toBe(false); // that reader saw the old state
    expect(await redis.exists(keys.favoritesOf(reader))).toBe(0); // but did not store it
    expect((await writer.favoritedAmong(reader, [a])).has(a)).toBe(true);
  });

  it('stays exact when a write lands just after a rebuild stored the set', async () => {
    const [reader, author] = [await user(), await user()];
    const a = await article(author);
    const r = relations();
    expect((await r.followedAmong(reader, [author])).size).toBe(0); // rebuilt: empty
    await db.insertInto('follows').values({ follower_id: reader, followee_id: author }).execute();
    await r.followed(reader);
    expect((await r.followedAmong(reader, [author])).has(author)).toBe(true);
    await db.deleteFrom('follows').where('follower_id', '=', reader).execute();
    await r.followed(reader);
    expect((await r.followedAmong(reader, [author])).has(author)).toBe(false);
    expect(a).toBeTruthy();
  });

  it('ends exact whatever order committed changes reach Redis in, with reads between them', async () => {
    const author = await user();
    const articles = [await article(author), await article(author), await article(author)];
    const r = relations();
    // Favorites and unfavorites commit one after another; each that changed a row owes Redis its
    // after-commit call, which arrives `delay` commits later (so later changes can overtake it), and a
    // reader may look after any commit (rebuilding the set when it is missing).
    const change = fc.record({
      a: fc.integer({ min: 0, max: 2 }),
      on: fc.boolean(),
      delay: fc.integer({ min: 0, max: 4 }),
      readAfter: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(change, { minLength: 1, maxLength: 8 }), async (changes) => {
        const reader = await user();
        const owed = new Set<number>();
        const deliver = async (due: number[]) => {
          // Calls due together arrive newest first: the one committed last overtakes the others.
          for (const j of due.reverse()) if (owed.delete(j)) await r.favorited(reader);
        };
        for (const [k, { a, on, readAfter }] of changes.entries()) {
          const id = articles[a] as string;
          const changed = on
            ? (
                await db
                  .insertInto('favorites')
                  .values({ user_id: reader, article_id: id })
                  .onConflict((oc) => oc.doNothing())
                  .executeTakeFirst()
              ).numInsertedOrUpdatedRows === 1n
            : (
                await db
                  .deleteFrom('favorites')
                  .where('user_id', '=', reader)
                  .where('article_id', '=', id)
                  .executeTakeFirst()
              ).numDeletedRows === 1n;
          if (changed) owed.add(k);
          if (readAfter) await r.favoritedAmong(reader, articles);
          await deliver([...changes.keys()].filter((j) => j <= k && j + (changes[j]?.delay ?? 0) === k));
        }
        await deliver([...owed].sort((x, y) => x - y));
        const truth = (
          await db.selectFrom('favorites').select('article_id').where('user_id', '=', reader).execute()
        ).map((row) => row.article_id);
        expect([...(await r.favoritedAmong(reader, articles))].sort()).toEqual(truth.sort());
      }),
      { numRuns: 60 },
    );
  });

  it('keeps the most recent activity, newest first, bounded, rebuilt the same from PostgreSQL', async () => {
    const [reader, author] = [await user(), await user()];
    const articles = [await article(author), await article(author), await article(author)];
    for (const a of articles) await favorite(reader, a);
    const r = new Relations({ db, redis, keys, log: silent, activityLength: 2 });
    const rebuilt = await r.recentActivity(reader, 10);
    expect(rebuilt.map((x) => x.articleId)).toEqual([articles[2], articles[1]]);
    const a4 = await article(author);
    await favorite(reader, a4);
    await r.recordActivity(reader, { type: 'favorite', articleId: a4, at: new Date().toISOString() });
    expect((await r.recentActivity(reader, 10)).map((x) => x.articleId)).toEqual([a4, articles[2]]);
    await redis.del(keys.activityOf(reader));
    expect((await r.recentActivity(reader, 10)).map((x) => x.articleId)).toEqual([a4, articles[2]]);
    expect(await redis.pttl(keys.activityOf(reader))).toBeGreaterThan(0);
  });

  it('answers from PostgreSQL while redis-cache is down', async () => {
    const [reader, author] = [await user(), await user()];
    const a = await article(author);
    await favorite(reader, a);
    const r = relations();
    await server.stop();
    try {
      expect((await r.favoritedAmong(reader, [a])).has(a)).toBe(true);
      expect((await r.recentActivity(reader, 5)).map((x) => x.articleId)).toEqual([a]);
      await r.favorited(reader); // cannot reach Redis: no error for the caller
    } finally {
      await server.restart();
    }
    const deadline = Date.now() + 5000;
    while (redis.status !== 'ready' && Date.now() < deadline) await new Promise((res) => setTimeout(res, 25));
  });

  it('drops the keys of a user whose change could not reach Redis, once it is reachable again', async () => {
    const [reader, author] = [await user(), await user()];
    const a = await article(author);
    // A client of its own, cut off while the server (and the set on it) stays up: a network partition.
    const own = await connectRedis({
      url: server.url,
      role: 'cache',
      use: 'producer',
      name: 'own',
      log: silent,
    });
    try {
      const r = new Relations({ db, redis: own, keys, log: silent });
      expect((await r.favoritedAmong(reader, [a])).has(a)).toBe(false); // set built: empty
      own.disconnect(false);
      while (own.status !== 'end') await new Promise((res) => setTimeout(res, 10));
      await favorite(reader, a);
      await r.favorited(reader); // missed: the set on the server still says "not favorited"
      expect(await redis.sismember(keys.favoritesOf(reader), a)).toBe(0);
      await own.connect(); // back: the missed user's keys are deleted, so the next read rebuilds
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && (await redis.exists(keys.favoritesOf(reader))) === 1)
        await new Promise((res) => setTimeout(res, 25));
      expect((await r.favoritedAmong(reader, [a])).has(a)).toBe(true);
    } finally {
      await closeRedis(own);
    }
  });
});
