/**
 * CSRF rules (buildApp, real redis-session, real upstream): which cookie-authenticated writes pass, by
 * the headers browsers send (Sec-Fetch-Site, Origin) and those API clients with a cookie jar don't send;
 * `Authorization` wins over a cookie; sign-up and login never fail because of a cookie.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway, type Upstream } from './helpers.ts';

const ALLOWED = 'https://app.example.com';

describe('CSRF: cookie-authenticated writes (buildApp, real redis-session)', () => {
  let gateway: TestGateway;
  let upstream: Upstream;
  let app: FastifyInstance;
  let cookie: string;
  let other: string;

  beforeAll(async () => {
    gateway = await startGateway({ CORS_ORIGINS: ALLOWED, SESSION_COOKIE_NAME: 'atoll_session' });
    ({ app, upstream } = gateway);
    const { sessions } = gateway;
    cookie = `atoll_session=${(await sessions.create({ userId: 'u-1', username: 'ann', roles: ['user'] })).token}`;
    other = (await sessions.create({ userId: 'u-2', username: 'bob', roles: ['user'] })).token;
  });
  afterAll(() => gateway.close());

  const post = (url: string, headers: Record<string, string>) =>
    app.inject({ method: 'POST', url, headers: { host: 'api.example.org', ...headers } });

  it.each([
    ['Sec-Fetch-Site: same-origin', { 'sec-fetch-site': 'same-origin', origin: 'https://api.example.org' }],
    ['Sec-Fetch-Site: none (typed by the user)', { 'sec-fetch-site': 'none' }],
    [
      'an allowed origin (CORS_ORIGINS), even cross-site',
      { 'sec-fetch-site': 'cross-site', origin: ALLOWED },
    ],
    ['the own origin, from a browser without Sec-Fetch-Site', { origin: 'https://api.example.org' }],
    ['no Origin and no Sec-Fetch-Site: not a browser (Postman, Bruno, curl -b)', {}],
  ])('passes: %s', async (_name, headers) => {
    const res = await post('/api/articles/a/favorite', { cookie, ...headers });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ upstream: true });
  });

  it.each([
    ['a cross-site page', { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }],
    [
      'a same-site page on another origin',
      { 'sec-fetch-site': 'same-site', origin: 'https://www.example.org' },
    ],
    ['a same-origin claim is not trusted without the browser saying so', { origin: 'https://evil.example' }],
    ['an opaque origin', { origin: 'null' }],
  ])('refuses: %s', async (_name, headers) => {
    upstream.received.length = 0;
    const res = await post('/api/articles/a/favorite', { cookie, ...headers });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({
      errors: { origin: ['is not allowed to use the session cookie'] },
      code: 'CSRF_ORIGIN_REJECTED',
    });
    expect(upstream.received).toHaveLength(0);
  });

  it('a request with Authorization is not cookie-authenticated: the header decides, the cookie is ignored', async () => {
    const res = await post('/api/articles/a/favorite', {
      cookie,
      authorization: `Token ${other}`,
      'sec-fetch-site': 'cross-site',
      origin: 'https://evil.example',
    });
    expect(res.statusCode).toBe(200);
  });

  it('safe methods and requests without a live session cookie are not checked', async () => {
    const headers = { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' };
    expect((await app.inject({ url: '/api/articles', headers: { cookie, ...headers } })).statusCode).toBe(
      200,
    );
    const stale = { cookie: `atoll_session=${'A'.repeat(43)}`, ...headers };
    expect((await post('/api/articles/a/favorite', stale)).statusCode).toBe(200);
  });

  it('sign-up and login never fail because of a cookie; from a foreign page the cookie is not forwarded', async () => {
    upstream.received.length = 0;
    const foreign = await post('/api/users/login', {
      cookie,
      'sec-fetch-site': 'cross-site',
      origin: 'https://evil.example',
    });
    expect(foreign.statusCode).toBe(200);
    expect(upstream.received[0]?.headers.cookie).toBeUndefined();
    const stale = await post('/api/users', {
      cookie: `atoll_session=${'B'.repeat(43)}`,
      origin: 'https://evil.example',
    });
    expect(stale.statusCode).toBe(200);
    // From this site the cookie goes along, so auth can end the session it replaces (fixation).
    upstream.received.length = 0;
    const own = await post('/api/users/login', { cookie, 'sec-fetch-site': 'same-origin' });
    expect(own.statusCode).toBe(200);
    expect(upstream.received[0]?.headers.cookie).toBe(cookie);
  });
});
