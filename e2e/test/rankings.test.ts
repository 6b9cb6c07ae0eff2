/**
 * Trending articles and the author leaderboard: Sorted Sets on redis-cache that follow favorites and
 * rebuild themselves from PostgreSQL, so flushing or stopping the cache changes no answer.
 */
import type { RoleCheckedRedis } from '@atoll/redis';
import { closeRedis } from '@atoll/redis';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, flushAll, keysOf, redisOf, restartRedis, startTestStack, stopRedis } from './helpers.ts';

describe('trending and leaderboard', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let cache: RoleCheckedRedis;
  const token: Record<string, string> = {};
  const slug: Record<string, string> = {};

  const trending = async () =>
    (await api('GET', '/api/articles/trending')).body.articles.map((a: { title: string }) => a.title);
  const leaderboard = async () =>
    (await api('GET', '/api/leaderboard')).body.leaderboard.map(
      (e: { profile: { username: string }; favoritesReceived: number }) =>
        `${e.profile.username}:${e.favoritesReceived}`,
    );

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('rankings'));
    api = apiClient(stack.gatewayUrl);
    cache = await redisOf(stack, 'cache');
    for (const name of ['ann', 'bo', 'cy']) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email: `${name}@example.com`, password: 'correct horse' } },
      });
      token[name] = res.body.user.token;
    }
    for (const [who, title] of [
      ['ann', 'A1'],
      ['bo', 'B1'],
      ['bo', 'B2'],
    ] as const) {
      const res = await api('POST', '/api/articles', {
        token: token[who],
        body: { article: { title, description: 'd', body: 'b' } },
      });
      slug[title] = res.body.article.slug;
    }
    await api('POST', `/api/articles/${slug.A1}/favorite`, { token: token.bo });
    await api('POST', `/api/articles/${slug.A1}/favorite`, { token: token.cy });
    await api('POST', `/api/articles/${slug.B1}/favorite`, { token: token.ann });
  }, 90_000);
  afterAll(async () => {
    await closeRedis(cache);
    await dispose();
  });

  it('ranks by favorites with time decay, and authors by favorites received', async () => {
    expect(await trending()).toEqual(['A1', 'B2', 'B1']); // B2 and B1 tie on favorites: the newer first
    expect(await leaderboard()).toEqual(['ann:2', 'bo:1']);
    const page = await api('GET', '/api/leaderboard?limit=1&offset=1');
    expect(page.body).toMatchObject({ count: 2, leaderboard: [{ rank: 2, profile: { username: 'bo' } }] });
    const trendingPage = await api('GET', '/api/articles/trending?limit=1');
    expect(trendingPage.body.articlesCount).toBe(3);
    expect(trendingPage.body.articles[0]).not.toHaveProperty('body');
  });

  it('follows new favorites while the sets exist, and every cache key has a TTL', async () => {
    await trending(); // the sets exist now
    await api('POST', `/api/articles/${slug.B2}/favorite`, { token: token.ann });
    await api('POST', `/api/articles/${slug.B2}/favorite`, { token: token.cy });
    await api('POST', `/api/articles/${slug.B2}/favorite`, { token: token.bo });
    expect(await trending()).toEqual(['B2', 'A1', 'B1']);
    expect(await leaderboard()).toEqual(['bo:4', 'ann:2']);
    await api('DELETE', `/api/articles/${slug.B2}/favorite`, { token: token.bo });
    expect(await leaderboard()).toEqual(['bo:3', 'ann:2']);
    for (const key of await keysOf(cache, '*')) expect(await cache.pttl(key), key).toBeGreaterThan(0);
  });

  it('gives the same answers after FLUSHALL (rebuilt from PostgreSQL)', async () => {
    const before = [await trending(), await leaderboard()];
    await flushAll(cache);
    expect([await trending(), await leaderboard()]).toEqual(before);
    expect(await cache.exists(`${stack.envOf('content').REDIS_KEY_PREFIX}:rank:{trending}`)).toBe(1);
  });

  it('answers from PostgreSQL while redis-cache is stopped, and writes keep working', async () => {
    const before = [await trending(), await leaderboard()];
    await stopRedis(stack, 'cache');
    try {
      expect([await trending(), await leaderboard()]).toEqual(before);
      const fav = await api('POST', `/api/articles/${slug.B1}/favorite`, { token: token.cy });
      expect(fav.status).toBe(200);
      expect(await leaderboard()).toEqual(['bo:4', 'ann:2']);
    } finally {
      await restartRedis(stack, 'cache');
    }
    // The restarted cache is empty (no persistence): the next read rebuilds, with the write included.
    await new Promise((r) => setTimeout(r, 300));
    expect(await leaderboard()).toEqual(['bo:4', 'ann:2']);
  });

  it('is recomputed from PostgreSQL on schedule, once per interval however many instances run', async () => {
    // A drifted score (as a write racing a rebuild could leave), members that are gone or malformed.
    const prefix = stack.envOf('content').REDIS_KEY_PREFIX;
    const key = `${prefix}:rank:{leaderboard}`;
    const ghost = '00000000-0000-4000-8000-000000000000';
    const ann = (await api('GET', '/api/auth/session', { token: token.ann })).body.session.userId;
    await cache.zadd(key, 99, ghost, 98, 'not-even-an-id', 97, ann);
    await cache.zadd(`${prefix}:rank:{trending}`, 1e9, 'not-an-id');
    // what is shown skips what it cannot find (and never sends a malformed id to PostgreSQL)...
    expect(await leaderboard()).toEqual(['ann:97', 'bo:4']);
    expect((await api('GET', '/api/articles/trending')).status).toBe(200);
    // A second instance declares the same schedules, every second: the last declaration wins.
    const second = await ServiceProcess.start('content', {
      ...stack.envOf('content'),
      RANKINGS_RECOMPUTE_S: '1',
    });
    try {
      // ...and the scheduled recompute puts PostgreSQL's truth back.
      expect(
        await eventually(async () => JSON.stringify(await leaderboard()) === '["bo:4","ann:2"]', 5000),
      ).toBe(true);
      expect(await cache.zscore(key, ghost)).toBeNull();
      // Two instances declared the schedule; it exists once per ranking.
      const queue = await redisOf(stack, 'queue');
      try {
        const schedulers = new Queue('rankings', {
          connection: queue,
          prefix: `${stack.envOf('content').REDIS_KEY_PREFIX}:{bull}`,
        });
        expect((await schedulers.getJobSchedulers()).map((j) => j.key).sort()).toEqual([
          'recompute-leaderboard',
          'recompute-trending',
        ]);
        await schedulers.close();
      } finally {
        await closeRedis(queue);
      }
    } finally {
      await second.stop();
    }
  });
});
