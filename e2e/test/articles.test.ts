/**
 * Content through the gateway, against the RealWorld contract: profiles and follows, articles (create,
 * get, update, delete, list with filters and paging, feed), comments, favorites, tags, and bad input.
 */
import type { Stack } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, startTestStack } from './helpers.ts';

describe('articles, comments, favorites, follows and tags through the gateway', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let db: pg.Client;
  const users: Record<string, { token: string; username: string }> = {};
  const article = (title: string, extra: Record<string, unknown> = {}) => ({
    article: { title, description: `About ${title}`, body: `Body of ${title}`, ...extra },
  });
  const create = async (who: string, title: string, extra: Record<string, unknown> = {}) => {
    const res = await api('POST', '/api/articles', { token: users[who]?.token, body: article(title, extra) });
    expect(res.status).toBe(201);
    return res.body.article;
  };
  const counts = async () =>
    Object.fromEntries(
      await Promise.all(
        ['articles', 'comments', 'favorites', 'follows', 'article_tags'].map(async (t) => [
          t,
          Number((await db.query(`select count(*) from content.${t}`)).rows[0].count),
        ]),
      ),
    );

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('articles', { SERVER_TIMING: 'true' }));
    api = apiClient(stack.gatewayUrl);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    for (const name of ['ada', 'bob', 'cyd']) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email: `${name}@example.com`, password: 'correct horse' } },
      });
      users[name] = { token: res.body.user.token, username: name };
    }
  }, 90_000);
  afterAll(async () => {
    await db.end();
    await dispose();
  });

  it('creates an article (201) with the contract shape; tagList keeps its order', async () => {
    const a = await create('ada', 'Hello World', { tagList: ['zeta', 'alpha', 'zeta', 'mid'] });
    expect(a).toEqual({
      slug: expect.stringMatching(/^hello-world-[a-z0-9]+$/),
      title: 'Hello World',
      description: 'About Hello World',
      body: 'Body of Hello World',
      tagList: ['zeta', 'alpha', 'mid'],
      createdAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/),
      updatedAt: expect.any(String),
      favorited: false,
      favoritesCount: 0,
      author: { username: 'ada', bio: null, image: null, following: false },
    });
    const got = await api('GET', `/api/articles/${a.slug}`);
    expect(got.status).toBe(200);
    expect(got.body.article).toEqual(a);
  });

  it('filters by a tag that reads like a path (`../x`), and refuses a path that hides a dot segment', async () => {
    const { slug } = await create('ada', 'Dots in a tag', { tagList: ['../x', '..'] });
    for (const tag of ['../x', '..']) {
      const res = await api('GET', `/api/articles?tag=${encodeURIComponent(tag)}`);
      expect(res.status, tag).toBe(200);
      expect(
        res.body.articles.map((a: { slug: string }) => a.slug),
        tag,
      ).toContain(slug);
      const raw = await fetch(`${stack.gatewayUrl}/api/articles?tag=${tag}`);
      expect(raw.status, tag).toBe(200);
    }
    const hidden = await fetch(`${stack.gatewayUrl}/api/articles/${slug}%2F..%2F..`);
    expect(hidden.status).toBe(400);
    expect(await hidden.json()).toMatchObject({ code: 'NON_CANONICAL_PATH' });
  });

  it('gives equal titles distinct slugs, and a new title a new slug', async () => {
    const one = await create('ada', 'Same Title');
    const two = await create('ada', 'Same Title');
    expect(one.slug).not.toBe(two.slug);
    const renamed = await api('PUT', `/api/articles/${one.slug}`, {
      token: users.ada?.token,
      body: { article: { title: 'Other Title' } },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body.article.slug).toMatch(/^other-title-/);
    expect((await api('GET', `/api/articles/${one.slug}`)).status).toBe(404);
    expect((await api('GET', `/api/articles/${renamed.body.article.slug}`)).status).toBe(200);
  });

  it('keeps tags on an update without tagList, clears them with [], and refuses null', async () => {
    const a = await create('ada', 'Tagged', { tagList: ['x', 'y'] });
    const kept = await api('PUT', `/api/articles/${a.slug}`, {
      token: users.ada?.token,
      body: { article: { body: 'new body' } },
    });
    expect(kept.body.article).toMatchObject({ tagList: ['x', 'y'], body: 'new body' });
    const cleared = await api('PUT', `/api/articles/${a.slug}`, {
      token: users.ada?.token,
      body: { article: { tagList: [] } },
    });
    expect(cleared.body.article.tagList).toEqual([]);
    const nulled = await api('PUT', `/api/articles/${a.slug}`, {
      token: users.ada?.token,
      body: { article: { tagList: null } },
    });
    expect(nulled.status).toBe(422);
    expect(nulled.body.errors).toHaveProperty('tagList');
  });

  it("answers 422 can't be blank, 401 without a token, 403 for someone else's, 404 for unknown slugs", async () => {
    const before = await counts();
    const blank = await api('POST', '/api/articles', {
      token: users.ada?.token,
      body: { article: { title: '', description: ' ' } },
    });
    expect(blank.status).toBe(422);
    expect(blank.body.errors).toEqual({ title: ["can't be blank"], body: ["can't be blank"] });
    const spaces = await api('POST', '/api/articles', { token: users.ada?.token, body: article('   ') });
    expect(spaces.body.errors).toEqual({ title: ["can't be blank"] });
    expect((await api('POST', '/api/articles', { body: article('No token') })).status).toBe(401);
    const wrongTypes = await api('POST', '/api/articles', {
      token: users.ada?.token,
      body: { article: { title: 1, description: [], body: {} } },
    });
    expect(wrongTypes.status).toBe(422);
    const huge = await api('POST', '/api/articles', {
      token: users.ada?.token,
      raw: JSON.stringify(article('Huge', { body: 'x'.repeat(300_000) })),
    });
    expect(huge.status).toBe(413);
    expect(await counts()).toEqual(before);

    const a = await create('ada', 'Mine');
    const edit = await api('PUT', `/api/articles/${a.slug}`, {
      token: users.bob?.token,
      body: { article: { title: 'Theirs' } },
    });
    expect(edit.status).toBe(403);
    expect(edit.body.errors).toEqual({ article: ['forbidden'] });
    expect((await api('DELETE', `/api/articles/${a.slug}`, { token: users.bob?.token })).status).toBe(403);
    const missing = await api('GET', '/api/articles/no-such-article');
    expect(missing.status).toBe(404);
    expect(missing.body.errors).toEqual({ article: ['not found'] });
    expect((await api('DELETE', `/api/articles/${a.slug}`, { token: users.ada?.token })).status).toBe(204);
    expect((await api('GET', `/api/articles/${a.slug}`)).status).toBe(404);
  });

  it('lists newest first without bodies, filters by tag, author and favorited, pages, and counts the total', async () => {
    const mark = `t${Date.now()}`;
    const made = [];
    for (let i = 0; i < 5; i += 1)
      made.push(await create(i % 2 ? 'bob' : 'cyd', `Listed ${i}`, { tagList: [mark] }));
    const page = await api('GET', `/api/articles?tag=${mark}&limit=2&offset=1`);
    expect(page.status).toBe(200);
    expect(page.body.articlesCount).toBe(5);
    expect(page.body.articles.map((a: { slug: string }) => a.slug)).toEqual([made[3].slug, made[2].slug]);
    expect(page.body.articles[0]).not.toHaveProperty('body');
    const byAuthor = await api('GET', `/api/articles?tag=${mark}&author=BOB`);
    expect(byAuthor.body.articlesCount).toBe(2);
    await api('POST', `/api/articles/${made[0].slug}/favorite`, { token: users.ada?.token });
    const favorited = await api('GET', `/api/articles?favorited=ada&tag=${mark}`);
    expect(favorited.body.articles.map((a: { slug: string }) => a.slug)).toEqual([made[0].slug]);
    const defaults = await api('GET', '/api/articles');
    expect(defaults.body.articles.length).toBeLessThanOrEqual(20);
    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'offset=-1', 'offset=1e9']) {
      const res = await api('GET', `/api/articles?${query}`);
      expect(res.status, query).toBe(422);
    }
    // Names that cannot be Redis hash tags as they are ({, }) are still plain values to look up.
    const braces = encodeURIComponent('{x}');
    expect((await api('GET', `/api/articles?tag=${braces}&author=${braces}`)).body.articlesCount).toBe(0);
    expect((await api('GET', `/api/articles/${braces}`)).status).toBe(404);
    expect((await api('GET', `/api/profiles/${braces}`)).status).toBe(404);
    expect((await api('GET', `/api/profiles/${braces}/activity`)).status).toBe(404);
  });

  it('favorites and unfavorites, counting each user once', async () => {
    const a = await create('ada', 'Loved');
    const fav = await api('POST', `/api/articles/${a.slug}/favorite`, { token: users.bob?.token });
    expect(fav.body.article).toMatchObject({ favorited: true, favoritesCount: 1 });
    await api('POST', `/api/articles/${a.slug}/favorite`, { token: users.bob?.token });
    await api('POST', `/api/articles/${a.slug}/favorite`, { token: users.cyd?.token });
    expect(
      (await api('GET', `/api/articles/${a.slug}`, { token: users.bob?.token })).body.article,
    ).toMatchObject({
      favorited: true,
      favoritesCount: 2,
    });
    const unfav = await api('DELETE', `/api/articles/${a.slug}/favorite`, { token: users.bob?.token });
    expect(unfav.body.article).toMatchObject({ favorited: false, favoritesCount: 1 });
    expect((await api('POST', '/api/articles/nope/favorite', { token: users.bob?.token })).status).toBe(404);
  });

  it('follows and unfollows profiles; the feed shows followed authors only, paged', async () => {
    const profile = await api('GET', '/api/profiles/ada', { token: users.cyd?.token });
    expect(profile.body).toEqual({ profile: { username: 'ada', bio: null, image: null, following: false } });
    const follow = await api('POST', '/api/profiles/ada/follow', { token: users.cyd?.token });
    expect(follow.body.profile.following).toBe(true);
    const a = await create('ada', 'For followers');
    const feed = await api('GET', '/api/articles/feed?limit=1', { token: users.cyd?.token });
    expect(feed.status).toBe(200);
    expect(feed.body.articles[0]).toMatchObject({
      slug: a.slug,
      author: { username: 'ada', following: true },
    });
    expect(feed.body.articlesCount).toBeGreaterThan(1);
    expect(
      feed.body.articles.every((x: { author: { username: string } }) => x.author.username === 'ada'),
    ).toBe(true);
    const unfollow = await api('DELETE', '/api/profiles/ada/follow', { token: users.cyd?.token });
    expect(unfollow.body.profile.following).toBe(false);
    expect((await api('GET', '/api/articles/feed', { token: users.cyd?.token })).body.articlesCount).toBe(0);
    expect((await api('GET', '/api/articles/feed')).status).toBe(401);
    expect((await api('GET', '/api/profiles/nobody-here')).body.errors).toEqual({ profile: ['not found'] });
  });

  it('adds (201), lists and deletes (204) comments; only their author may delete them', async () => {
    const a = await create('ada', 'Discussed');
    const added = await api('POST', `/api/articles/${a.slug}/comments`, {
      token: users.bob?.token,
      body: { comment: { body: 'First!' } },
    });
    expect(added.status).toBe(201);
    expect(added.body.comment).toEqual({
      id: expect.any(Number),
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
      body: 'First!',
      author: { username: 'bob', bio: null, image: null, following: false },
    });
    const blank = await api('POST', `/api/articles/${a.slug}/comments`, {
      token: users.bob?.token,
      body: { comment: { body: '' } },
    });
    expect(blank.status).toBe(422);
    const list = await api('GET', `/api/articles/${a.slug}/comments`);
    expect(list.body.comments.map((c: { body: string }) => c.body)).toEqual(['First!']);
    const id = added.body.comment.id as number;
    const notYours = await api('DELETE', `/api/articles/${a.slug}/comments/${id}`, {
      token: users.cyd?.token,
    });
    expect(notYours.status).toBe(403);
    expect(notYours.body.errors).toEqual({ comment: ['forbidden'] });
    expect(
      (await api('DELETE', `/api/articles/${a.slug}/comments/${id}`, { token: users.bob?.token })).status,
    ).toBe(204);
    expect(
      (await api('DELETE', `/api/articles/${a.slug}/comments/${id}`, { token: users.bob?.token })).body
        .errors,
    ).toEqual({
      comment: ['not found'],
    });
    expect(
      (await api('DELETE', `/api/articles/${a.slug}/comments/abc`, { token: users.bob?.token })).status,
    ).toBe(422);
  });

  it('keeps author profiles from the user events: a new account appears, a new bio follows', {
    timeout: 100_000,
  }, async () => {
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'dee', email: 'dee@example.com', password: 'correct horse' } },
    });
    // Events travel asynchronously (outbox, stream, projection); the bound is against hanging on a busy
    // machine, not a speed claim.
    const bound = 30_000;
    expect(reg.status).toBe(201);
    expect(await eventually(async () => (await api('GET', '/api/profiles/dee')).status === 200, bound)).toBe(
      true,
    );
    const updated = await api('PUT', '/api/user', {
      token: reg.body.user.token,
      body: { user: { bio: 'I write', image: 'https://img/d.png' } },
    });
    expect(updated.status).toBe(200);
    expect(
      await eventually(async () => {
        const res = await api('GET', '/api/profiles/dee');
        return res.body.profile?.bio === 'I write' && res.body.profile?.image === 'https://img/d.png';
      }, bound),
    ).toBe(true);
    const renamed = await api('PUT', '/api/user', {
      token: reg.body.user.token,
      body: { user: { username: 'dee2' } },
    });
    expect(renamed.status).toBe(200);
    expect(await eventually(async () => (await api('GET', '/api/profiles/dee2')).status === 200, bound)).toBe(
      true,
    );
    expect((await api('GET', '/api/profiles/dee')).status).toBe(404);
  });

  it('costs the same few SQL queries for a page of 1 or of 20 articles (no N+1), counted by Server-Timing', async () => {
    const mark = `np${Date.now()}`;
    for (let i = 0; i < 20; i += 1) {
      const a = await create(['ada', 'bob', 'cyd'][i % 3] as string, `Page ${i}`, {
        tagList: [mark, `t${i}`],
      });
      if (i % 2) await api('POST', `/api/articles/${a.slug}/favorite`, { token: users.cyd?.token });
    }
    await api('POST', '/api/profiles/bob/follow', { token: users.cyd?.token });
    const queries = async (limit: number, token?: string) => {
      const res = await api('GET', `/api/articles?tag=${mark}&limit=${limit}`, token ? { token } : {});
      expect(res.body.articles).toHaveLength(limit);
      const timing = res.headers.get('server-timing') ?? '';
      return Number(/desc="(\d+) queries"/.exec(timing)?.[1]);
    };
    // cyd's favorites and follows changed, so the next page they read rebuilds their relation sets from
    // PostgreSQL (a query each, whatever the page's size): another page first (the oldest article
    // alone, by its own tag, so the newest one's summary is not cached by it), then the two counted.
    expect((await api('GET', '/api/articles?tag=t0', { token: users.cyd?.token })).status).toBe(200);
    const oneSignedIn = await queries(1, users.cyd?.token);
    const twentySignedIn = await queries(20, users.cyd?.token);
    expect(twentySignedIn).toBe(oneSignedIn);
    expect(twentySignedIn).toBeLessThanOrEqual(4); // ids, total, articles, their tags; flags from redis-cache
    expect(await queries(20)).toBeLessThanOrEqual(3); // anonymous: no favorites or follows to look up
  });

  it('lists the tags in use', async () => {
    await create('ada', 'Tags', { tagList: ['gardening'] });
    const res = await api('GET', '/api/tags');
    expect(res.status).toBe(200);
    expect(res.body.tags).toContain('gardening');
  });
});
