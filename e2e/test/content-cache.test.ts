/**
 * The three-layer cache of article reads, with two content instances (A from the stack, B started
 * beside it) called directly with the assertion the gateway would send: no stale read after a write
 * from any instance, one load for a stampede, profiles changes reaching cached articles, and a cache
 * that is flushed or stopped changing no answer.
 */
import { randomUUID } from 'node:crypto';
import type { Identity } from '@atoll/identity';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import {
  directToContent as direct,
  eventually,
  flushAll,
  redisOf,
  restartRedis,
  sessionIdentity,
  startTestStack,
  stopRedis,
} from './helpers.ts';

describe('content cache across two instances', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let b: ServiceProcess;
  let cache: RoleCheckedRedis;
  let author: Identity;
  let token: string;

  const A = () => stack.services.content.url;
  const B = () => b.url;
  const newArticle = async (title: string) =>
    (
      await api('POST', '/api/articles', {
        token,
        body: { article: { title, description: 'd', body: 'first body' } },
      })
    ).body.article.slug as string;

  const identityOf = (userToken: string) => sessionIdentity(api, userToken);

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('cache', { SERVER_TIMING: 'true' }));
    api = apiClient(stack.gatewayUrl);
    b = await ServiceProcess.start('content', stack.envOf('content'));
    cache = await redisOf(stack, 'cache');
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'writer', email: 'writer@example.com', password: 'correct horse' } },
    });
    token = reg.body.user.token;
    author = await identityOf(token);
  }, 90_000);
  afterAll(async () => {
    await b.stop();
    await closeRedis(cache);
    await dispose();
  });

  it('serves repeated reads without SQL, and never a stale read after a write on the other instance', async () => {
    const slug = await newArticle('Cached');
    await direct(A(), 'GET', `/api/articles/${slug}`); // creating it through A may have cached it already
    expect((await direct(A(), 'GET', `/api/articles/${slug}`)).queries).toBe(0); // L1
    expect((await direct(B(), 'GET', `/api/articles/${slug}`)).queries).toBe(0); // L2
    expect((await direct(B(), 'GET', `/api/articles/${slug}`)).queries).toBe(0); // L1 on B too

    const edit = await direct(
      A(),
      'PUT',
      `/api/articles/${slug}`,
      { article: { body: 'second body' } },
      author,
    );
    expect(edit.status).toBe(200);
    expect((await direct(B(), 'GET', `/api/articles/${slug}`)).body.article.body).toBe('second body');

    const fav = await direct(B(), 'POST', `/api/articles/${slug}/favorite`, undefined, author);
    expect(fav.body.article.favoritesCount).toBe(1);
    expect((await direct(A(), 'GET', `/api/articles/${slug}`)).body.article.favoritesCount).toBe(1);

    const renamed = await direct(
      B(),
      'PUT',
      `/api/articles/${slug}`,
      { article: { title: 'Renamed' } },
      author,
    );
    expect((await direct(A(), 'GET', `/api/articles/${slug}`)).status).toBe(404);
    expect((await direct(A(), 'GET', `/api/articles/${renamed.body.article.slug}`)).body.article.title).toBe(
      'Renamed',
    );
  });

  it('loads a cold article once (per instance at most) for 200 concurrent reads across both instances', async () => {
    const slug = await newArticle('Stampede');
    const reads = await Promise.all(
      Array.from({ length: 200 }, (_, i) => direct(i % 2 ? A() : B(), 'GET', `/api/articles/${slug}`)),
    );
    expect(reads.every((r) => r.status === 200 && r.body.article.slug === slug)).toBe(true);
    const totalQueries = reads.reduce((sum, r) => sum + r.queries, 0);
    expect(totalQueries).toBeLessThanOrEqual(4); // one load is 2 queries (article, tags)
  });

  it("shows an author's new bio in cached articles once the user event arrives", async () => {
    const slug = await newArticle('Bio');
    await direct(A(), 'GET', `/api/articles/${slug}`);
    await direct(B(), 'GET', `/api/articles/${slug}`);
    await api('PUT', '/api/user', { token, body: { user: { bio: 'Now with a bio' } } });
    for (const base of [A(), B()]) {
      expect(
        await eventually(
          async () =>
            (await direct(base, 'GET', `/api/articles/${slug}`)).body.article.author.bio === 'Now with a bio',
        ),
      ).toBe(true);
    }
  });

  it('changes no answer when the cache is flushed or stopped, and writes while it is down are seen', async () => {
    const slug = await newArticle('Resilient');
    const first = (await direct(A(), 'GET', `/api/articles/${slug}`)).body;
    await direct(B(), 'GET', `/api/articles/${slug}`);
    await flushAll(cache);
    expect((await direct(B(), 'GET', `/api/articles/${slug}`)).body).toEqual(first);

    await stopRedis(stack, 'cache');
    try {
      expect((await direct(A(), 'GET', `/api/articles/${slug}`)).body).toEqual(first);
      const edit = await direct(
        A(),
        'PUT',
        `/api/articles/${slug}`,
        { article: { body: 'written while the cache was down' } },
        author,
      );
      expect(edit.status).toBe(200);
      // B's L1 was warm, but with the bus down it is not trusted: B reads PostgreSQL.
      expect((await direct(B(), 'GET', `/api/articles/${slug}`)).body.article.body).toBe(
        'written while the cache was down',
      );
    } finally {
      await restartRedis(stack, 'cache');
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const base of [A(), B()]) {
      expect((await direct(base, 'GET', `/api/articles/${slug}`)).body.article.body).toBe(
        'written while the cache was down',
      );
    }
  });

  it('caches list pages, tags and profiles, and no list, flag or count is stale after a write on the other instance', async () => {
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'reader', email: 'reader@example.com', password: 'correct horse' } },
    });
    const reader = await identityOf(reg.body.user.token);
    const tag = `t${randomUUID().slice(0, 6)}`;
    const reads = {
      all: '/api/articles?limit=5',
      tagged: `/api/articles?tag=${tag}`,
      byAuthor: '/api/articles?author=writer&limit=100',
      favorited: '/api/articles?favorited=reader',
      tags: '/api/tags',
      profile: '/api/profiles/writer',
    };
    const read = (path: string) => direct(B(), 'GET', path, undefined, reader);
    for (const path of Object.values(reads)) await read(path); // B's L1 warm
    for (const path of Object.values(reads)) expect((await read(path)).queries, path).toBe(0);

    // A new article, written on A, is at once at the top of B's lists, with its tag
    const created = await direct(
      A(),
      'POST',
      '/api/articles',
      { article: { title: 'Listed', description: 'd', body: 'b', tagList: [tag] } },
      author,
    );
    const slug = created.body.article.slug as string;
    const before = (await read(reads.byAuthor)).body.articlesCount;
    expect((await read(reads.all)).body.articles[0].slug).toBe(slug);
    expect((await read(reads.tagged)).body.articles.map((x: any) => x.slug)).toEqual([slug]);
    expect((await read(reads.byAuthor)).body.articles[0].slug).toBe(slug);
    expect((await read(reads.tags)).body.tags).toContain(tag);

    // The reader favorites it and follows its author on A; B's flags, counts and lists follow
    await direct(A(), 'POST', `/api/articles/${slug}/favorite`, undefined, reader);
    await direct(A(), 'POST', '/api/profiles/writer/follow', undefined, reader);
    const item = (await read(reads.all)).body.articles[0];
    expect([item.favorited, item.favoritesCount, item.author.following]).toEqual([true, 1, true]);
    expect((await read(reads.favorited)).body.articles.map((x: any) => x.slug)).toEqual([slug]);
    expect((await read(reads.profile)).body.profile.following).toBe(true);
    expect((await read(`/api/articles/${slug}`)).body.article.favorited).toBe(true);
    // a warm list page with the reader's flags costs no SQL at all (flags from the relation sets)
    expect((await read(reads.all)).queries).toBe(0);

    // Flushing the whole cache instance changes no answer (sets and lists rebuild from PostgreSQL)
    const snapshot = await Promise.all(Object.values(reads).map(async (p) => (await read(p)).body));
    await flushAll(cache);
    await new Promise((r) => setTimeout(r, 100));
    const after = await Promise.all(
      Object.values(reads).map(async (p) => (await direct(A(), 'GET', p, undefined, reader)).body),
    );
    expect(after).toEqual(snapshot);

    // Unfollow, unfavorite, retag and delete on A: every list and flag on B follows
    await direct(A(), 'DELETE', '/api/profiles/writer/follow', undefined, reader);
    expect((await read(reads.profile)).body.profile.following).toBe(false);
    await direct(A(), 'DELETE', `/api/articles/${slug}/favorite`, undefined, reader);
    expect((await read(reads.favorited)).body.articlesCount).toBe(0);
    expect((await read(reads.all)).body.articles[0].favorited).toBe(false);
    await direct(A(), 'PUT', `/api/articles/${slug}`, { article: { tagList: [] } }, author);
    expect((await read(reads.tagged)).body.articlesCount).toBe(0);
    expect((await read(reads.tags)).body.tags).not.toContain(tag);
    await direct(A(), 'DELETE', `/api/articles/${slug}`, undefined, author);
    expect((await read(reads.all)).body.articles.map((x: any) => x.slug)).not.toContain(slug);
    expect((await read(reads.byAuthor)).body.articlesCount).toBe(before - 1);
  });

  it("shows a user's recent activity, newest first, without articles deleted since", async () => {
    const slug = await newArticle('Active');
    const other = await newArticle('Gone soon');
    await direct(A(), 'POST', `/api/articles/${other}/favorite`, undefined, author);
    await direct(A(), 'POST', `/api/articles/${slug}/comments`, { comment: { body: 'a note' } }, author);
    const activity = (await direct(B(), 'GET', '/api/profiles/writer/activity?limit=3')).body.activity;
    expect(activity.map((a: any) => [a.type, a.article.slug])).toEqual([
      ['comment', slug],
      ['favorite', other],
      ['article', other],
    ]);
    await direct(A(), 'DELETE', `/api/articles/${other}`, undefined, author);
    const later = (await direct(B(), 'GET', '/api/profiles/writer/activity?limit=3')).body.activity;
    // the two entries about the deleted article are gone; the page is filled from older activity
    expect(later.map((a: any) => a.article.slug).slice(0, 2)).toEqual([slug, slug]);
    expect(later.map((a: any) => a.article.slug)).not.toContain(other);
    expect((await direct(B(), 'GET', '/api/profiles/nobody-here/activity')).status).toBe(404);
    expect((await direct(B(), 'GET', '/api/profiles/writer/activity?limit=500')).status).toBe(422);
  });

  it('asks auth once for a profile whose user event has not arrived, and caches the answer', async () => {
    await api('POST', '/api/users', {
      body: { user: { username: 'latecomer', email: 'late@example.com', password: 'correct horse' } },
    });
    const db = stack.databaseUrl;
    // Stand in for an event that has not arrived: the projection loses the row.
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: db });
    await client.connect();
    try {
      await eventually(
        async () =>
          (await client.query("select 1 from content.profiles where username = 'latecomer'")).rowCount === 1,
      );
      await client.query("delete from content.profiles where username = 'latecomer'");
      await flushAll(cache);
      const first = await direct(B(), 'GET', '/api/profiles/latecomer');
      expect(first.status).toBe(200);
      expect(first.body.profile.username).toBe('latecomer');
      // written into the projection, then served from the cache with no query
      expect(
        (await client.query("select 1 from content.profiles where username = 'latecomer'")).rowCount,
      ).toBe(1);
      expect((await direct(B(), 'GET', '/api/profiles/latecomer')).queries).toBe(0);
      // nobody by that name: a 404, cached too (until someone takes the name)
      expect((await direct(B(), 'GET', '/api/profiles/no-such-user')).status).toBe(404);
      expect((await direct(B(), 'GET', '/api/profiles/no-such-user')).queries).toBe(0);
      await api('POST', '/api/users', {
        body: { user: { username: 'no-such-user', email: 'nsu@example.com', password: 'correct horse' } },
      });
      expect(
        await eventually(async () => (await direct(B(), 'GET', '/api/profiles/no-such-user')).status === 200),
      ).toBe(true);
    } finally {
      await client.end();
    }
  });
});
