/**
 * One spelling per path (buildApp, real redis-session, real upstream): a path that the router or a
 * service would read differently from the gateway (dot segments, `//`, encoded unreserved characters,
 * backslashes, `%00`) is refused at the door, before it is counted, checked or proxied; encodings that
 * mean something else (`%20`, `%2F`, UTF-8) pass as they are; and every spelling of the password reset
 * that does reach auth counts in the `mail` tier.
 */
import { request as httpRequest } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalPath } from '../src/routes/canonical.ts';
import { startGateway, type TestGateway, type Upstream } from './helpers.ts';

describe('canonical paths (buildApp, real redis-session)', () => {
  let gateway: TestGateway;
  let upstream: Upstream;
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    gateway = await startGateway(
      {
        RATE_LIMIT_MAIL_MAX: '1',
        RATE_LIMIT_MAIL_WINDOW_S: '60',
        RATE_LIMIT_AUTH_MAX: '1',
        RATE_LIMIT_AUTH_WINDOW_S: '60',
      },
      { listen: true },
    );
    ({ app, upstream } = gateway);
    port = Number(new URL(gateway.url).port);
  });
  afterAll(() => gateway.close());

  const post = (url: string, remoteAddress: string) =>
    app.inject({
      method: 'POST',
      url,
      remoteAddress,
      headers: { 'content-type': 'application/json' },
      payload: { user: { email: 'a@b.c' } },
    });

  /**
   * A request with its path sent exactly as written: inject() and fetch() resolve dot segments and
   * backslashes first, as browsers do; crafted requests do not.
   */
  const raw = (method: string, path: string) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: unknown }>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) }),
          );
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ user: { email: 'a@b.c' } }));
    });

  it.each([
    ['/api/users/./password-reset', '/api/users/password-reset'],
    ['/api/users/x/../password-reset', '/api/users/password-reset'],
    ['/api/users/%2e/password-reset', '/api/users/password-reset'],
    ['/api/users/%2E%2E/users/login', '/api/users/login'],
    ['/api/users/%6cogin', '/api/users/login'],
    ['/api/users/%6Cogin', '/api/users/login'],
    ['/api/user%73', '/api/users'],
    ['/api/users/password%2Dreset', '/api/users/password-reset'],
    ['/api/users/password-rese%74', '/api/users/password-reset'],
    ['//api/users/login', '/api/users/login'],
    ['/api//users/login', '/api/users/login'],
    ['/api/users/login/.', '/api/users/login/'],
    ['/api/users/login/x/..', '/api/users/login/'],
    ['/api\\users\\login', '/api/users/login'],
    ['/api/users/%5Flogin%7E', '/api/users/_login~'],
    ['/health/../api/users/login', '/api/users/login'],
  ])(
    'refuses %s with 400 NON_CANONICAL_PATH naming %s; nothing is counted or proxied',
    async (path, canonical) => {
      upstream.received.length = 0;
      const res = await raw('POST', `${path}?x=1`);
      expect(res.status).toBe(400);
      expect(res.body).toEqual({
        errors: { path: [`is not canonical, use ${canonical}`] },
        code: 'NON_CANONICAL_PATH',
      });
      expect(res.headers['x-request-id']).toBeTruthy();
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers.ratelimit).toBeUndefined();
      expect(upstream.received).toHaveLength(0);
      expect(canonicalPath(canonical)).toBeNull();
    },
  );

  it('refuses %00 in a path, and GET like any other method', async () => {
    upstream.received.length = 0;
    expect((await app.inject({ url: '/api/articles/a%00b' })).statusCode).toBe(400);
    const get = await app.inject({ url: '/api/article%73' });
    expect(get.statusCode).toBe(400);
    expect(get.json()).toMatchObject({ code: 'NON_CANONICAL_PATH' });
    expect(upstream.received).toHaveLength(0);
  });

  it('refuses a dot segment hidden by %2F or %5C, and passes one in a query on as data', async () => {
    upstream.received.length = 0;
    for (const path of [
      '/api/profiles/..%2F',
      '/api/articles/a%2F..',
      '/api/articles/..%5Cadmin',
      '/api/profiles/..%2f',
      '/api/profiles/..%252F',
      '/api/articles/x/..;/y',
    ]) {
      const res = await app.inject({ url: path, remoteAddress: '10.7.0.4' });
      expect(res.statusCode, path).toBe(400);
      expect(res.json(), path).toEqual({
        errors: { path: ['holds /.. or ../ once decoded'] },
        code: 'NON_CANONICAL_PATH',
      });
    }
    expect(upstream.received).toHaveLength(0);
    for (const url of [
      '/api/articles?tag=..%2Fx',
      '/api/articles?tag=../x&limit=5',
      '/api/articles?tag=..',
    ]) {
      upstream.received.length = 0;
      const res = await app.inject({ url, remoteAddress: '10.7.0.4' });
      expect(res.statusCode, url).toBe(200);
      expect(upstream.received[0]?.url, url).toBe(url);
    }
  });

  it('keeps the encodings that mean something else: %20, %2F in a slug, UTF-8 in either hex case', async () => {
    for (const path of [
      '/api/articles/a%20b',
      '/api/articles/a%2Fb/comments',
      '/api/articles/a%2fb',
      '/api/profiles/caf%C3%A9',
      '/api/profiles/caf%c3%a9',
      '/api/articles/v1.2',
      '/api/articles/.well',
      '/api/users/login/',
    ]) {
      upstream.received.length = 0;
      const res = await app.inject({ url: path, remoteAddress: '10.7.0.2' });
      expect(res.statusCode, path).toBe(200);
      expect(upstream.received[0]?.url, path).toBe(path);
    }
  });

  it('every spelling of the password reset that reaches auth counts in the mail tier', async () => {
    const from = '10.7.0.3';
    expect((await post('/api/users/password-reset', from)).statusCode).toBe(200);
    for (const variant of [
      '/api/users/password-reset/',
      '/api/users/password-reset?x=1',
      '/api/users/password-reset/?',
    ]) {
      const res = await post(variant, from);
      expect(res.statusCode, variant).toBe(429);
      expect(res.headers['ratelimit-policy'], variant).toMatch(/^"mail";q=1;w=60/);
    }
    // The spellings the finding used never get a budget of their own: refused before counting.
    for (const variant of ['/api/users/./password-reset', '/api/users/password%2Dreset'])
      expect((await raw('POST', variant)).status, variant).toBe(400);
    // Sign-in endpoints likewise share the auth tier whatever their spelling.
    expect((await post('/api/users/login', '10.7.0.5')).statusCode).toBe(200);
    expect((await post('/api/users/login/', '10.7.0.5')).statusCode).toBe(429);
  });
});
