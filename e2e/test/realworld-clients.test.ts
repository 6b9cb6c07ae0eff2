/**
 * The RealWorld flow as the public API collections run it (Postman's newman, Bruno): a client that keeps
 * every cookie and sends `Content-Type: application/json` on every request, against the whole stack with
 * its default limits. Every status is the one the contract names, and every body of the flow is then
 * checked against the schemas of the public RealWorld contract (api/openapi.yml of
 * https://github.com/realworld-apps/realworld; that check is skipped where contract.ts does not find
 * it). Then one address signs up and signs in as a conformance run or a classroom behind one NAT would,
 * while guessing is still refused.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contract, type JarClient, type JarResponse, jarClient } from './clients.ts';
import { MISSING, needsContract } from './contract.ts';
import { startTestStack } from './helpers.ts';

const DEFAULT_LIMITS = {
  RATE_LIMIT_ANONYMOUS_MAX: '600',
  RATE_LIMIT_USER_MAX: '1200',
  RATE_LIMIT_AUTH_MAX: '300',
  RATE_LIMIT_MAIL_MAX: '10',
  // auth's hashing pool as deployed: a class signing in four at a time from one address fits its share.
  PASSWORD_HASH_PER_CLIENT: '4',
  PASSWORD_HASH_QUEUE: '8',
};

describe('RealWorld clients that keep cookies and always send Content-Type (default limits)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  /** Every answer of the flow, with the contract's path it answers, for the contract's schemas. */
  const answers: Array<{ method: string; spec: string; status: number; body: unknown; where: string }> = [];
  const run = Date.now().toString(36);

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('clients', DEFAULT_LIMITS));
  }, 90_000);
  afterAll(async () => {
    await dispose();
  });

  /** One request and its status; its body is kept to be checked against the contract's `spec` path. */
  const expectCall = async (
    client: JarClient,
    [method, path, spec]: [string, string, string],
    status: number,
    opts: { body?: unknown; token?: string | null } = {},
  ): Promise<JarResponse> => {
    const res = await client(method, path, opts);
    const where = `${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`;
    expect(res.status, where).toBe(status);
    answers.push({ method, spec, status: res.status, body: res.body, where });
    return res;
  };

  it('walks the whole flow: users, profiles, articles, favorites, comments, follows, feed, tags, deletes', async () => {
    const postman = jarClient(stack.gatewayUrl);
    const other = jarClient(stack.gatewayUrl);
    const ada = { username: `ada${run}`, email: `ada${run}@example.com`, password: 'adapassword' };
    const bob = { username: `bob${run}`, email: `bob${run}@example.com`, password: 'bobpassword' };

    // Register, then log in with the sign-up's cookie still in the jar (no Authorization).
    const registered = await expectCall(postman, ['POST', '/api/users', '/users'], 201, {
      body: { user: ada },
    });
    expect(registered.body.user).toMatchObject({
      username: ada.username,
      email: ada.email,
      bio: null,
      image: null,
    });
    // An API client gets its token in the body and no cookie: its jar stays empty, so a request it sends
    // without Authorization is anonymous, as the collections expect.
    expect(postman.cookies.size).toBe(0);
    const login = await expectCall(postman, ['POST', '/api/users/login', '/users/login'], 200, {
      body: { user: { email: ada.email, password: ada.password } },
    });
    let token = login.body.user.token as string;
    const bobToken = (await expectCall(other, ['POST', '/api/users', '/users'], 201, { body: { user: bob } }))
      .body.user.token as string;

    // Current user, by token; without it, 401 (nothing in the jar speaks for the client).
    const me = await expectCall(postman, ['GET', '/api/user', '/user'], 200, { token });
    expect(me.body.user).toEqual({ email: ada.email, token, username: ada.username, bio: null, image: null });
    await expectCall(postman, ['GET', '/api/user', '/user'], 401);
    await expectCall(postman, ['PUT', '/api/user', '/user'], 401, { body: { user: { bio: 'x' } } });

    // Update everything at once, the password too: the token the client holds keeps working.
    const updated = await expectCall(postman, ['PUT', '/api/user', '/user'], 200, {
      token,
      body: {
        user: {
          email: `ada2${run}@example.com`,
          bio: 'I work at statefarm',
          image: 'https://i.stack.imgur.com/xHWG8.jpg',
          password: 'adapassword2',
        },
      },
    });
    expect(updated.body.user).toMatchObject({
      email: `ada2${run}@example.com`,
      bio: 'I work at statefarm',
      image: 'https://i.stack.imgur.com/xHWG8.jpg',
      token,
    });
    await expectCall(postman, ['GET', '/api/user', '/user'], 200, { token });
    await expectCall(postman, ['GET', '/api/user', '/user'], 200, { token: updated.body.user.token });
    // The settings page sends every field it has; an empty password is refused (the RealWorld contract),
    // so a client that keeps the password leaves it out.
    const blank = await postman('PUT', '/api/user', {
      token,
      body: { user: { image: '', username: ada.username, bio: '', password: '' } },
    });
    expect(blank.status).toBe(422);
    expect(blank.body).toEqual({ errors: { password: ["can't be blank"] }, code: 'VALIDATION_FAILED' });
    const settings = await expectCall(postman, ['PUT', '/api/user', '/user'], 200, {
      token,
      body: { user: { image: '', username: ada.username, bio: '', email: `ada2${run}@example.com` } },
    });
    expect(settings.body.user).toMatchObject({ image: null, bio: null, token });
    const relogin = await expectCall(postman, ['POST', '/api/users/login', '/users/login'], 200, {
      body: { user: { email: `ada2${run}@example.com`, password: 'adapassword2' } },
    });
    token = relogin.body.user.token;

    // Articles
    const article = {
      title: `How to train your dragon ${run}`,
      description: 'Ever wonder how?',
      body: 'Very carefully.',
    };
    const created = await expectCall(postman, ['POST', '/api/articles', '/articles'], 201, {
      token,
      body: { article: { ...article, tagList: ['training', `dragons${run}`] } },
    });
    const slug = created.body.article.slug as string;
    expect(created.body.article).toMatchObject({
      ...article,
      tagList: ['training', `dragons${run}`],
      favorited: false,
      favoritesCount: 0,
      author: { username: ada.username, following: false },
    });
    const bobArticle = (
      await expectCall(other, ['POST', '/api/articles', '/articles'], 201, {
        token: bobToken,
        body: { article: { title: `Bob ${run}`, description: 'd', body: 'b', tagList: [] } },
      })
    ).body.article.slug as string;
    const all = await expectCall(postman, ['GET', '/api/articles', '/articles'], 200, { token });
    expect(all.body.articlesCount).toBeGreaterThanOrEqual(2);
    const byAuthor = await expectCall(
      postman,
      ['GET', `/api/articles?author=${ada.username}`, '/articles'],
      200,
      {
        token,
      },
    );
    expect(byAuthor.body.articles.map((a: { slug: string }) => a.slug)).toEqual([slug]);
    const byTag = await expectCall(postman, ['GET', `/api/articles?tag=dragons${run}`, '/articles'], 200, {
      token,
    });
    expect(byTag.body.articlesCount).toBe(1);
    await expectCall(postman, ['GET', `/api/articles/${slug}`, '/articles/{slug}'], 200, { token });
    const edited = await expectCall(postman, ['PUT', `/api/articles/${slug}`, '/articles/{slug}'], 200, {
      token,
      body: { article: { body: 'With two hands' } },
    });
    expect(edited.body.article.body).toBe('With two hands');
    await expectCall(other, ['PUT', `/api/articles/${slug}`, '/articles/{slug}'], 403, {
      token: bobToken,
      body: { article: { body: 'mine now' } },
    });

    // Favorites: no body, Content-Type: application/json all the same.
    const fav = await expectCall(
      postman,
      ['POST', `/api/articles/${slug}/favorite`, '/articles/{slug}/favorite'],
      200,
      {
        token,
      },
    );
    expect(fav.body.article).toMatchObject({ favorited: true, favoritesCount: 1 });
    const favorited = await expectCall(
      postman,
      ['GET', `/api/articles?favorited=${ada.username}`, '/articles'],
      200,
      {
        token,
      },
    );
    expect(favorited.body.articles.map((a: { slug: string }) => a.slug)).toEqual([slug]);
    const unfav = await expectCall(
      postman,
      ['DELETE', `/api/articles/${slug}/favorite`, '/articles/{slug}/favorite'],
      200,
      { token },
    );
    expect(unfav.body.article).toMatchObject({ favorited: false, favoritesCount: 0 });

    // Comments
    const comment = await expectCall(
      postman,
      ['POST', `/api/articles/${slug}/comments`, '/articles/{slug}/comments'],
      201,
      { token, body: { comment: { body: 'Thank you so much!' } } },
    );
    const comments = await expectCall(
      postman,
      ['GET', `/api/articles/${slug}/comments`, '/articles/{slug}/comments'],
      200,
      { token },
    );
    expect(comments.body.comments.map((c: { id: number }) => c.id)).toEqual([comment.body.comment.id]);
    await expectCall(
      postman,
      [
        'DELETE',
        `/api/articles/${slug}/comments/${comment.body.comment.id}`,
        '/articles/{slug}/comments/{id}',
      ],
      204,
      { token },
    );
    const none = await postman('GET', `/api/articles/${slug}/comments`, { token });
    expect(none.body.comments).toEqual([]);

    // Profiles, follows and the feed
    const profile = await expectCall(
      postman,
      ['GET', `/api/profiles/${bob.username}`, '/profiles/{username}'],
      200,
      {
        token,
      },
    );
    expect(profile.body.profile).toEqual({
      username: bob.username,
      bio: null,
      image: null,
      following: false,
    });
    const followed = await expectCall(
      postman,
      ['POST', `/api/profiles/${bob.username}/follow`, '/profiles/{username}/follow'],
      200,
      { token },
    );
    expect(followed.body.profile.following).toBe(true);
    const feed = await expectCall(postman, ['GET', '/api/articles/feed', '/articles/feed'], 200, { token });
    expect(feed.body.articles.map((a: { slug: string }) => a.slug)).toEqual([bobArticle]);
    const unfollowed = await expectCall(
      postman,
      ['DELETE', `/api/profiles/${bob.username}/follow`, '/profiles/{username}/follow'],
      200,
      { token },
    );
    expect(unfollowed.body.profile.following).toBe(false);

    // Tags
    const tags = await expectCall(postman, ['GET', '/api/tags', '/tags'], 200);
    expect(tags.body.tags).toContain(`dragons${run}`);

    // Deletes, and what errors look like.
    await expectCall(other, ['DELETE', `/api/articles/${slug}`, '/articles/{slug}'], 403, {
      token: bobToken,
    });
    await expectCall(postman, ['DELETE', `/api/articles/${slug}`, '/articles/{slug}'], 204, { token });
    await expectCall(postman, ['GET', `/api/articles/${slug}`, '/articles/{slug}'], 404, { token });
    await expectCall(postman, ['POST', '/api/articles', '/articles'], 422, { token, body: { article: {} } });
    await expectCall(jarClient(stack.gatewayUrl), ['GET', '/api/user', '/user'], 401);
    await expectCall(postman, ['POST', '/api/users', '/users'], 409, {
      body: { user: { ...bob, email: `other${run}@example.com` } },
    });
  });

  it.skipIf(MISSING)(
    needsContract("answers the whole flow with bodies the contract's schemas accept"),
    () => {
      const check = contract();
      expect(answers.length, 'the answers of the flow above, which runs first').toBeGreaterThan(0);
      const problems = answers.flatMap(({ method, spec, status, body, where }) => {
        const found = check(method, spec, status, body);
        return found.length > 0 ? [`${where}: ${found.join('; ')}`] : [];
      });
      expect(problems).toEqual([]);
    },
  );

  it('signs up 60 users and signs in 60 times from one address within a minute; 10 wrong passwords are still refused', {
    timeout: 120_000,
  }, async () => {
    const client = jarClient(stack.gatewayUrl);
    const users = Array.from({ length: 60 }, (_, i) => ({
      username: `class${run}x${i}`,
      email: `class${run}x${i}@example.com`,
      password: 'classroom pass',
    }));
    const statuses: number[] = [];
    // Four at a time, as a class would: everyone from the same address, cookies kept.
    for (let i = 0; i < users.length; i += 4) {
      const batch = users.slice(i, i + 4);
      for (const res of await Promise.all(
        batch.map((user) => client('POST', '/api/users', { body: { user } })),
      ))
        statuses.push(res.status);
      for (const res of await Promise.all(
        batch.map((u) =>
          client('POST', '/api/users/login', { body: { user: { email: u.email, password: u.password } } }),
        ),
      ))
        statuses.push(res.status);
    }
    expect(statuses.filter((s) => s === 201)).toHaveLength(60);
    expect(statuses.filter((s) => s === 200)).toHaveLength(60);

    const target = users[0] as (typeof users)[number];
    const guesses: JarResponse[] = [];
    for (let i = 0; i < 10; i += 1) {
      guesses.push(
        await client('POST', '/api/users/login', {
          body: { user: { email: target.email, password: `guess ${i}` } },
        }),
      );
    }
    expect(guesses.map((g) => g.status)).toEqual([401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
    expect(guesses[9]?.body).toEqual({
      errors: { login: ['too many failed attempts, try again later'] },
      code: 'AUTH_TOO_MANY_ATTEMPTS',
    });
    // The right password from here waits too, until the window ends.
    const right = await client('POST', '/api/users/login', {
      body: { user: { email: target.email, password: target.password } },
    });
    expect(right.status).toBe(429);
    expect(Number(right.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});
