/**
 * What a RealWorld client such as Postman sees through the gateway of the whole stack: requests that carry
 * `Content-Type: application/json` and an empty body (with `Content-Length: 0`, and with no length at
 * all) succeed on the routes that take no body, and every error, including those Fastify or Node's HTTP
 * parser raise before a route runs, comes as `{"errors": {"<field>": ["<message>"]}, "code": "<CODE>"}`.
 */
import { rawRequest, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { startTestStack } from './helpers.ts';

/** `{"errors": {"<field>": ["<message>"]}, "code": "<CODE>"}` with this code. */
function expectRealWorldError(body: unknown, code: string): void {
  expect(body).toMatchObject({ errors: expect.any(Object), code });
  const errors = Object.values((body as { errors: Record<string, unknown> }).errors);
  expect(errors.length).toBeGreaterThan(0);
  for (const messages of errors) {
    expect(Array.isArray(messages) && messages.length > 0).toBe(true);
    expect((messages as unknown[]).every((m) => typeof m === 'string')).toBe(true);
  }
}

describe('error shapes and empty bodies through the gateway (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  const tokens: Record<string, string> = {};
  let slug = '';

  /** A request with `Content-Type: application/json` and an empty body, as Postman sends it. */
  const emptyJson = (method: string, path: string, token: string, contentLength: boolean) =>
    rawRequest(
      stack.gatewayUrl,
      `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token ${token}\r\n` +
        `Content-Type: application/json\r\n${contentLength ? 'Content-Length: 0\r\n' : ''}\r\n`,
    );

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('error-shapes'));
    api = apiClient(stack.gatewayUrl);
    for (const name of ['ada', 'bob']) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email: `${name}@example.com`, password: 'correct horse' } },
      });
      expect(res.status).toBe(201);
      tokens[name] = res.body.user.token;
    }
    const created = await api('POST', '/api/articles', {
      token: tokens.ada,
      body: { article: { title: 'Empty bodies', description: 'are no bodies', body: 'Postman sends JSON' } },
    });
    expect(created.status).toBe(201);
    slug = created.body.article.slug;
  }, 90_000);
  afterAll(async () => {
    await dispose();
  });

  it('bad JSON: 400 MALFORMED_BODY', async () => {
    const res = await api('POST', '/api/users/login', { raw: '{"user": {"email": ' });
    expect(res.status).toBe(400);
    expect(res.body).toEqual({ errors: { body: ['is not valid JSON'] }, code: 'MALFORMED_BODY' });
  });

  it('favorite and unfavorite with an empty JSON body: 200', async () => {
    const favorite = await emptyJson('POST', `/api/articles/${slug}/favorite`, tokens.bob!, true);
    expect(favorite.status).toBe(200);
    expect(JSON.parse(favorite.body).article).toMatchObject({ slug, favorited: true, favoritesCount: 1 });
    const unfavorite = await emptyJson('DELETE', `/api/articles/${slug}/favorite`, tokens.bob!, false);
    expect(unfavorite.status).toBe(200);
    expect(JSON.parse(unfavorite.body).article).toMatchObject({ favorited: false, favoritesCount: 0 });
    const again = await emptyJson('POST', `/api/articles/${slug}/favorite`, tokens.bob!, false);
    expect(again.status).toBe(200);
    expect(JSON.parse(again.body).article).toMatchObject({ favorited: true });
  });

  it('follow and unfollow with an empty JSON body: 200', async () => {
    const follow = await emptyJson('POST', '/api/profiles/ada/follow', tokens.bob!, false);
    expect(follow.status).toBe(200);
    expect(JSON.parse(follow.body).profile).toMatchObject({ username: 'ada', following: true });
    const unfollow = await emptyJson('DELETE', '/api/profiles/ada/follow', tokens.bob!, true);
    expect(unfollow.status).toBe(200);
    expect(JSON.parse(unfollow.body).profile).toMatchObject({ username: 'ada', following: false });
  });

  it('a route that needs a body, sent an empty one: its 422, not a 400', async () => {
    const res = await emptyJson('PUT', '/api/user', tokens.bob!, true);
    expect(res.status).toBe(422);
    expect(JSON.parse(res.body)).toEqual({ errors: { body: ["can't be blank"] }, code: 'VALIDATION_FAILED' });
  });

  it('deletes with an empty JSON body: comment, article and the session itself, 204 as the contract says', async () => {
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token: tokens.ada,
      body: { comment: { body: 'soon gone' } },
    });
    expect(comment.status).toBe(201);
    const id = comment.body.comment.id;
    const delComment = await emptyJson('DELETE', `/api/articles/${slug}/comments/${id}`, tokens.ada!, true);
    expect(delComment.status).toBe(204);
    const delArticle = await emptyJson('DELETE', `/api/articles/${slug}`, tokens.ada!, false);
    expect(delArticle.status).toBe(204);
    expect((await api('GET', `/api/articles/${slug}`)).status).toBe(404);
    const logout = await emptyJson('DELETE', '/api/user/session', tokens.bob!, true);
    expect(logout.status).toBe(204);
    expect((await api('GET', '/api/user', { token: tokens.bob })).status).toBe(401);
  });

  it('an unknown route, and a method a known path does not serve: 404', async () => {
    for (const [method, path] of [
      ['GET', '/api/nowhere'],
      ['GET', '/nowhere'],
      ['PATCH', '/api/tags'],
    ]) {
      const res = await api(method!, path!);
      expect(res.status, `${method} ${path}`).toBe(404);
      expectRealWorldError(res.body, 'NOT_FOUND');
    }
  });

  it('a 20 KB header: 431 with a JSON body of the length it says, then the connection closes', async () => {
    const res = await rawRequest(
      stack.gatewayUrl,
      `GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'h'.repeat(20 * 1024)}\r\n\r\n`,
    );
    expect(res.status).toBe(431);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(res.bodyBytes);
    expect(res.headers.connection).toBe('close');
    expectRealWorldError(JSON.parse(res.body), 'HEADERS_TOO_LARGE');
  });

  it('a very long URL: 414 over 8 KB, 431 past the 16 KB the parser takes', async () => {
    const long = await api('GET', `/api/articles?tag=${'t'.repeat(10 * 1024)}`);
    expect(long.status).toBe(414);
    expect(long.body).toEqual({ errors: { url: ['is too long'] }, code: 'URI_TOO_LONG' });
    const huge = await rawRequest(
      stack.gatewayUrl,
      `GET /api/articles?tag=${'t'.repeat(20 * 1024)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`,
    );
    expect(huge.status).toBe(431);
    expectRealWorldError(JSON.parse(huge.body), 'HEADERS_TOO_LARGE');
  });

  it('long slugs reach the route (404 for one that does not exist); one over 1000 characters is a 414', async () => {
    const unknown = await api('GET', `/api/articles/${'s'.repeat(250)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ errors: { article: ['not found'] }, code: 'NOT_FOUND' });
    const favorite = await api('POST', `/api/articles/${'s'.repeat(250)}/favorite`, { token: tokens.ada });
    expect(favorite.status).toBe(404);
    expectRealWorldError(favorite.body, 'NOT_FOUND');
    const tooLong = await api('GET', `/api/articles/${'s'.repeat(1500)}`);
    expect(tooLong.status).toBe(414);
    expectRealWorldError(tooLong.body, 'URI_TOO_LONG');
  });

  it('a username whose percent-encoding is over 100 characters is found', async () => {
    const username = 'ü'.repeat(30); // 180 characters once encoded
    const created = await api('POST', '/api/users', {
      body: { user: { username, email: 'umlaut@example.com', password: 'correct horse' } },
    });
    expect(created.status).toBe(201);
    const profile = await api('GET', `/api/profiles/${encodeURIComponent(username)}`);
    expect(profile.status).toBe(200);
    expect(profile.body.profile).toMatchObject({ username });
  });

  it('bad URL encoding: 400; a body that is not JSON: 415; a body over the limit: 413', async () => {
    const badUrl = await api('GET', '/api/articles/%E0%A4%A');
    expect(badUrl.status).toBe(400);
    expectRealWorldError(badUrl.body, 'BAD_REQUEST');
    const text = await api('POST', '/api/users/login', {
      raw: 'email=a@example.com',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(text.status).toBe(415);
    expectRealWorldError(text.body, 'UNSUPPORTED_MEDIA_TYPE');
    const big = await api('POST', '/api/users/login', {
      body: { user: { email: 'a@example.com', password: 'p'.repeat(300 * 1024) } },
    });
    expect(big.status).toBe(413);
    expectRealWorldError(big.body, 'PAYLOAD_TOO_LARGE');
  });
});
