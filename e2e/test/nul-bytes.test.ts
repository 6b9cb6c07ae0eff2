/**
 * Finding V9 through the gateway of the whole stack: NUL characters, which PostgreSQL cannot store, in a
 * path, a query or any JSON string a route takes (title, description, body, tags, comment, bio, image,
 * email, username, password) are refused with a 4xx in the RealWorld shape, and no row of any service's
 * schema changes. Lone surrogates, which pg writes as U+FFFD, are no 5xx either.
 */
import type { Stack } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { changedTables, dbState, settledState } from './db-state.ts';
import { startTestStack } from './helpers.ts';

const NUL = '\u0000';
const NUL_REFUSED = (field: string) => ({
  errors: { [field]: ['must not contain NUL characters'] },
  code: 'VALIDATION_FAILED',
});
const URL_REFUSED = { errors: { url: ['must not contain NUL characters (%00)'] }, code: 'BAD_REQUEST' };

describe('NUL characters through the gateway (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let db: pg.Client;
  let state: ReturnType<typeof dbState>;
  let token = '';
  let slug = '';
  let commentId = 0;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('nul-bytes'));
    api = apiClient(stack.gatewayUrl);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    state = dbState(db);
    const user = await api('POST', '/api/users', {
      body: { user: { username: 'ada', email: 'ada@example.com', password: 'correct horse' } },
    });
    expect(user.status).toBe(201);
    token = user.body.user.token;
    const article = await api('POST', '/api/articles', {
      token,
      body: { article: { title: 'Nul', description: 'd', body: 'b', tagList: ['t'] } },
    });
    expect(article.status).toBe(201);
    slug = article.body.article.slug;
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token,
      body: { comment: { body: 'c' } },
    });
    expect(comment.status).toBe(201);
    commentId = comment.body.comment.id;
  }, 120_000);
  afterAll(async () => {
    await db?.end();
    await dispose?.();
  });

  it('%00 in a query or a path: 400 on url, no row changed', async () => {
    const before = await settledState(state);
    for (const path of [
      '/api/articles?tag=%00',
      '/api/articles?author=a%00b&limit=1',
      '/api/articles/a%00b',
      `/api/articles/${slug}%00`,
      '/api/profiles/a%00b',
      '/api/profiles/ada%00/follow',
      `/api/articles/${slug}/comments/${commentId}%00`,
    ]) {
      for (const method of path.endsWith('follow') ? ['POST', 'DELETE'] : ['GET']) {
        const res = await api(method, path, { token });
        expect(res.status, `${method} ${path}`).toBe(400);
        expect(res.body, `${method} ${path}`).toEqual(URL_REFUSED);
      }
    }
    const del = await api('DELETE', `/api/articles/${slug}%00`, { token });
    expect(del.status).toBe(400);
    expect(changedTables(before, await state())).toEqual([]);
  });

  it('U+0000 in any JSON string of a write: 422 naming the field, no row changed', async () => {
    const before = await settledState(state);
    const article = { title: 'T', description: 'D', body: 'B', tagList: ['x'] };
    const user = { username: 'bob', email: 'bob@example.com', password: 'correct horse' };
    const cases: Array<[string, string, unknown, string]> = [
      ['POST', '/api/articles', { article: { ...article, title: `a${NUL}` } }, 'title'],
      ['POST', '/api/articles', { article: { ...article, description: NUL } }, 'description'],
      ['POST', '/api/articles', { article: { ...article, body: `b${NUL}b` } }, 'body'],
      ['POST', '/api/articles', { article: { ...article, tagList: ['ok', `t${NUL}`] } }, 'tagList'],
      ['PUT', `/api/articles/${slug}`, { article: { title: NUL } }, 'title'],
      ['PUT', `/api/articles/${slug}`, { article: { body: NUL } }, 'body'],
      ['PUT', `/api/articles/${slug}`, { article: { tagList: [NUL] } }, 'tagList'],
      ['POST', `/api/articles/${slug}/comments`, { comment: { body: `hi${NUL}` } }, 'body'],
      ['PUT', '/api/user', { user: { bio: `bio${NUL}` } }, 'bio'],
      ['PUT', '/api/user', { user: { image: `https://x/${NUL}` } }, 'image'],
      ['PUT', '/api/user', { user: { email: `ada${NUL}@example.com` } }, 'email'],
      ['PUT', '/api/user', { user: { username: `ada${NUL}` } }, 'username'],
      ['PUT', '/api/user', { user: { password: `correct horse${NUL}` } }, 'password'],
      ['POST', '/api/users', { user: { ...user, email: `bob${NUL}@example.com` } }, 'email'],
      ['POST', '/api/users', { user: { ...user, username: `bob${NUL}` } }, 'username'],
      ['POST', '/api/users', { user: { ...user, password: `correct horse${NUL}` } }, 'password'],
      ['POST', '/api/users/login', { user: { email: `ada${NUL}@example.com`, password: 'x' } }, 'email'],
      [
        'POST',
        '/api/users/login',
        { user: { email: 'ada@example.com', password: `correct horse${NUL}` } },
        'password',
      ],
    ];
    for (const [method, path, body, field] of cases) {
      const res = await api(method, path, { token, body });
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(422);
      expect(res.body, `${method} ${path} ${JSON.stringify(body)}`).toEqual(NUL_REFUSED(field));
    }
    expect(changedTables(before, await state())).toEqual([]);
  });

  it('an escaped backslash before u0000 is text: stored as written', async () => {
    const res = await api('POST', `/api/articles/${slug}/comments`, {
      token,
      raw: '{"comment":{"body":"C:\\\\u0000"}}',
    });
    expect(res.status).toBe(201);
    expect(res.body.comment.body).toBe('C:\\u0000');
  });

  it('lone surrogates are no 5xx: pg stores them as U+FFFD', async () => {
    const created = await api('POST', '/api/articles', {
      token,
      raw: '{"article":{"title":"lone \\ud800","description":"\\udfff","body":"b","tagList":["\\udbff"]}}',
    });
    expect(created.status).toBe(201);
    const read = await api('GET', `/api/articles/${created.body.article.slug}`);
    expect(read.status).toBe(200);
    expect(read.body.article).toMatchObject({
      title: 'lone \ufffd',
      description: '\ufffd',
      tagList: ['\ufffd'],
    });
    const bio = await api('PUT', '/api/user', { token, raw: '{"user":{"bio":"\\ud800"}}' });
    expect(bio.status).toBe(200);
    expect(bio.body.user.bio).toBe('\ufffd');
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token,
      raw: '{"comment":{"body":"\\udc00"}}',
    });
    expect(comment.status).toBe(201);
    for (const path of [
      '/api/articles?tag=%ED%A0%80',
      '/api/articles/%ED%A0%80',
      '/api/profiles/%ED%A0%80',
    ]) {
      const res = await api('GET', path);
      expect(res.status, path).toBeLessThan(500);
    }
  });
});
