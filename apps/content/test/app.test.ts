import { createDb } from '@atoll/db';
import type { Identity } from '@atoll/identity';
import { gatewayHeaders, RedisServer } from '@atoll/testkit';
import fc from 'fast-check';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { SCHEMA } from '../src/migrations/index.ts';
import { type ContentFixture, startContentApp } from './content-fixture.ts';

describe('content buildApp on real Redis and PostgreSQL', () => {
  let content: ContentFixture;
  beforeAll(async () => {
    content = await startContentApp('content');
  });
  afterAll(async () => {
    await content.close();
  });

  /** A signed-in user: `n` ends their id, their session id is made of it too. */
  const user = (n: string, username: string): Identity => ({
    userId: `00000000-0000-0000-0000-0000000000${n}`,
    username,
    sessionId: n.repeat(22).slice(0, 43),
    roles: ['user'],
  });

  /** A request to content as the gateway sends it for `identity`. */
  const as = (identity: Identity, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) =>
    content.app.inject({
      method,
      url,
      ...(payload ? { payload } : {}),
      headers: gatewayHeaders(content.keys, 'content', { method, url, identity }),
    });

  it('is ready when its Redis roles and its schema answer, and names what is down', async () => {
    expect((await content.app.inject({ url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      checks: { 'redis-cache': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
    await content.cache.stop();
    const down = await content.app.inject({ url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({
      status: 'unavailable',
      down: ['redis-cache'],
      checks: { 'redis-cache': 'down', 'redis-queue': 'up', postgres: 'up' },
    });
    await content.cache.restart();
  });

  it('keeps the profiles projection in its own schema, usernames unique regardless of case', async () => {
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    await db
      .insertInto('profiles')
      .values({ user_id: '00000000-0000-0000-0000-000000000001', username: 'Ada' })
      .execute();
    await expect(
      db
        .insertInto('profiles')
        .values({ user_id: '00000000-0000-0000-0000-000000000002', username: 'ADA' })
        .execute(),
    ).rejects.toThrow(/profiles_username_key/);
    await db.destroy();
  });

  it('answers a new article without reading it back: the answer is what a reader then gets, mentions queued', async () => {
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    const known = user('b1', 'bea');
    const fresh = user('b2', 'cy');
    await db
      .insertInto('profiles')
      .values({ user_id: known.userId, username: 'Bea', bio: 'writes', image: 'https://example.com/b.png' })
      .execute();
    // A known author mentions a new one (no profile yet), themselves and nobody; a new author has no profile row.
    for (const [author, body, mentions] of [
      [known, 'hello @cy, @bea and @nobody', 0],
      [fresh, 'first words, for @Bea', 1],
      [known, 'now @cy exists', 1],
    ] as const) {
      const created = await as(author, 'POST', '/api/articles', {
        article: { title: 'Said once', description: 'd', body, tagList: ['z', 'a', 'z', ' m '] },
      });
      expect(created.statusCode, created.body).toBe(201);
      const { slug } = created.json().article;
      const read = await as(author, 'GET', `/api/articles/${slug}`);
      expect(created.json()).toEqual(read.json());
      expect(created.json().article.tagList).toEqual(['z', 'a', 'm']);
      const jobs = await db
        .selectFrom('job_outbox')
        .select('payload')
        .where(sql<string>`payload->>'articleSlug'`, '=', slug)
        .execute();
      expect(jobs, body).toHaveLength(mentions);
      for (const { payload } of jobs)
        expect(payload).toMatchObject({ actorId: author.userId, commentId: null, articleSlug: slug });
    }
    await db.destroy();
  });

  /** The `favorite` notification jobs in the outbox for an article, by its slug. */
  const favoriteJobs = async (db: Kysely<any>, slug: string) =>
    (
      await db
        .selectFrom('job_outbox')
        .select('payload')
        .where(sql<string>`payload->>'articleSlug'`, '=', slug)
        .where('name', '=', 'favorite')
        .execute()
    ).map((j) => j.payload);

  it('answers a favorite with the article its statement returned, as a reader then sees it', async () => {
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    const author = user('c1', 'dee');
    const fan = user('c2', 'eli');
    const created = await as(author, 'POST', '/api/articles', {
      article: { title: 'Liked', description: 'd', body: 'b', tagList: ['x'] },
    });
    const { slug } = created.json().article;
    const jobsFor = async () => (await favoriteJobs(db, slug)).length;
    // Repeats change nothing; the author's own favorite notifies nobody; the fan's first one notifies once.
    for (const [who, method, count, favorited, jobs] of [
      [fan, 'POST', 1, true, 1],
      [fan, 'POST', 1, true, 1],
      [author, 'POST', 2, true, 1],
      [fan, 'DELETE', 1, false, 1],
      [fan, 'DELETE', 1, false, 1],
      [fan, 'POST', 2, true, 2],
    ] as const) {
      const answer = await as(who, method, `/api/articles/${slug}/favorite`);
      expect(answer.statusCode, answer.body).toBe(200);
      expect(answer.json().article).toMatchObject({ favoritesCount: count, favorited });
      expect(answer.json()).toEqual((await as(who, 'GET', `/api/articles/${slug}`)).json());
      expect(await jobsFor()).toBe(jobs);
    }
    // Deleted behind the cache's back: the cached article is no excuse, the write finds it gone.
    await db.deleteFrom('articles').where('slug', '=', slug).execute();
    const gone = await as(fan, 'POST', `/api/articles/${slug}/favorite`);
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ errors: { article: ['not found'] } });
    await db.destroy();
  });

  it('keeps each favorite, the count and the jobs as a model says, in any order of favorites and unfavorites', async () => {
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    // The author (0) and three readers; the author's own favorites count but notify nobody.
    const people = [user('d0', 'fay'), user('d1', 'gus'), user('d2', 'hal'), user('d3', 'ivy')];
    const jobsFor = (slug: string) => favoriteJobs(db, slug);
    const rowsFor = async (slug: string) =>
      (
        await db
          .selectFrom('favorites as f')
          .innerJoin('articles as a', 'a.id', 'f.article_id')
          .select('f.user_id')
          .where('a.slug', '=', slug)
          .execute()
      ).map((r) => r.user_id);
    const newArticle = async () =>
      (
        await as(people[0] as Identity, 'POST', '/api/articles', {
          article: { title: 'Model', description: 'd', body: 'b', tagList: ['m', 'n'] },
        })
      ).json().article.slug as string;
    const op = fc.record({ who: fc.integer({ min: 0, max: 3 }), on: fc.boolean() });

    // One at a time: every answer is the model's, and equals what the user then reads.
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 10 }), async (ops) => {
        const slug = await newArticle();
        const favorited = new Set<number>();
        let notified = 0;
        for (const { who, on } of ops) {
          const identity = people[who] as Identity;
          const answer = await as(identity, on ? 'POST' : 'DELETE', `/api/articles/${slug}/favorite`);
          expect(answer.statusCode, answer.body).toBe(200);
          if (on && !favorited.has(who) && who !== 0) notified += 1;
          if (on) favorited.add(who);
          else favorited.delete(who);
          expect(answer.json().article).toMatchObject({ favoritesCount: favorited.size, favorited: on });
          expect(answer.json()).toEqual((await as(identity, 'GET', `/api/articles/${slug}`)).json());
        }
        expect((await rowsFor(slug)).length).toBe(favorited.size);
        const jobs = await jobsFor(slug);
        expect(jobs).toHaveLength(notified);
        for (const job of jobs)
          expect(job).toMatchObject({
            recipientId: people[0]?.userId,
            articleSlug: slug,
            articleTitle: 'Model',
          });
      }),
      { numRuns: 12 },
    );

    // All at once: whatever order PostgreSQL gives them, the count is the rows', and each reader's flag
    // is their row's.
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 2, maxLength: 16 }), async (ops) => {
        const slug = await newArticle();
        const answers = await Promise.all(
          ops.map(({ who, on }) =>
            as(people[who] as Identity, on ? 'POST' : 'DELETE', `/api/articles/${slug}/favorite`),
          ),
        );
        for (const answer of answers) expect(answer.statusCode, answer.body).toBe(200);
        const rows = await rowsFor(slug);
        for (const [who, identity] of people.entries()) {
          const read = (await as(identity, 'GET', `/api/articles/${slug}`)).json().article;
          expect(read.favoritesCount, `after ${JSON.stringify(ops)}`).toBe(rows.length);
          expect(read.favorited).toBe(rows.includes(identity.userId));
          if (!ops.some((o) => o.who === who)) expect(read.favorited).toBe(false);
        }
        // A job for each reader's change from no favorite to one: at least one per reader who ends with one.
        const readersWithOne = rows.filter((id) => id !== people[0]?.userId).length;
        expect((await jobsFor(slug)).length).toBeGreaterThanOrEqual(readersWithOne);
      }),
      { numRuns: 12 },
    );
    expect(
      (await as(people[1] as Identity, 'POST', '/api/articles/no-such-article-x1/favorite')).statusCode,
    ).toBe(404);
    await db.destroy();
  });

  it('refuses to build against a cache server without maxmemory', async () => {
    const unbounded = await RedisServer.start('cache', { args: ['--maxmemory', '0'] });
    try {
      await expect(buildApp(loadConfig({ ...content.env, REDIS_CACHE_URL: unbounded.url }))).rejects.toThrow(
        /redis-cache at .* maxmemory is 0 \(unbounded\)/,
      );
    } finally {
      await unbounded.dispose();
    }
  });
});
