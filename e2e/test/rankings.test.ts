/**
 * Trending articles and the author leaderboard: Sorted Sets on redis-cache that follow favorites and
 * rebuild themselves from PostgreSQL, so flushing or stopping the cache changes no answer.
 */
import type { RoleCheckedRedis } from '@atoll/redis';
import { closeRedis } from '@atoll/redis';
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { redisOf, startTestStack } from './helpers.ts';

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
    for (const key of await cache.keys('*')) expect(await cache.pttl(key), key).toBeGreaterThan(0);
  });

  it('gives the same answers after FLUSHALL (rebuilt from PostgreSQL)', async () => {
    const before = [await trending(), await leaderboard()];
    await cache.flushall();
    expect([await trending(), await leaderboard()]).toEqual(before);
    expect(await cache.exists(`${stack.envOf('content').REDIS_KEY_PREFIX}:rank:{trending}`)).toBe(1);
  });

  it('answers from PostgreSQL while redis-cache is stopped, and writes keep working', async () => {
    const before = [await trending(), await leaderboard()];
    await stack.redis.cache.stop();
    try {
      expect([await trending(), await leaderboard()]).toEqual(before);
      const fav = await api('POST', `/api/articles/${slug.B1}/favorite`, { token: token.cy });
      expect(fav.status).toBe(200);
      expect(await leaderboard()).toEqual(['bo:4', 'ann:2']);
    } finally {
      await stack.redis.cache.restart();
    }
    // The restarted cache is empty (no persistence): the next read rebuilds, with the write included.
    await new Promise((r) => setTimeout(r, 300));
    expect(await leaderboard()).toEqual(['bo:4', 'ann:2']);
  });
});
