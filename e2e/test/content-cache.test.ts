/**
 * The three-layer cache of article reads, with two content instances (A from the stack, B started
 * beside it) called directly with the assertion the gateway would send: no stale read after a write
 * from any instance, one load for a stampede, profiles changes reaching cached articles, and a cache
 * that is flushed or stopped changing no answer.
 */
import { randomUUID } from 'node:crypto';
import { IDENTITY_HEADER, type Identity, signIdentity } from '@atoll/identity';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, IDENTITY_SECRET, redisOf, startTestStack } from './helpers.ts';

describe('content cache across two instances', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let b: ServiceProcess;
  let cache: RoleCheckedRedis;
  let author: Identity;
  let token: string;

  /** A request straight to one content instance, as the gateway would make it. */
  const direct = async (
    base: string,
    method: string,
    path: string,
    body?: unknown,
    identity: Identity | null = null,
  ) => {
    const requestId = randomUUID();
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        'x-request-id': requestId,
        [IDENTITY_HEADER]: signIdentity(identity, {
          secret: IDENTITY_SECRET,
          requestId,
          clientIp: '127.0.0.1',
        }),
        ...(body ? { 'content-type': 'application/json' } : {}),
      },
      body: body ? JSON.stringify(body) : undefined,
    });
    const queries = Number(/desc="(\d+) queries"/.exec(res.headers.get('server-timing') ?? '')?.[1] ?? -1);
    return { status: res.status, body: (await res.json().catch(() => null)) as any, queries };
  };
  const A = () => stack.services.content.url;
  const B = () => b.url;
  const newArticle = async (title: string) =>
    (
      await api('POST', '/api/articles', {
        token,
        body: { article: { title, description: 'd', body: 'first body' } },
      })
    ).body.article.slug as string;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('cache'));
    api = apiClient(stack.gatewayUrl);
    b = await ServiceProcess.start('content', stack.envOf('content'));
    cache = await redisOf(stack, 'cache');
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'writer', email: 'writer@example.com', password: 'correct horse' } },
    });
    token = reg.body.user.token;
    const session = (await api('GET', '/api/auth/session', { token })).body.session;
    author = {
      userId: session.userId,
      username: session.username,
      sessionId: session.id,
      roles: session.roles,
    };
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
    await cache.flushall();
    expect((await direct(B(), 'GET', `/api/articles/${slug}`)).body).toEqual(first);

    await stack.redis.cache.stop();
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
      await stack.redis.cache.restart();
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const base of [A(), B()]) {
      expect((await direct(base, 'GET', `/api/articles/${slug}`)).body.article.body).toBe(
        'written while the cache was down',
      );
    }
  });
});
