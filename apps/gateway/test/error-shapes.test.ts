/**
 * What clients see at the gateway before anything is proxied (buildApp on a real redis-session, a real
 * upstream, and the gateway listening for raw-socket requests): an empty body with `Content-Type:
 * application/json` passes the door and reaches the service; unknown routes, bad URL encoding, long URLs,
 * headers over Node's limit, unknown methods and non-JSON bodies are answered in the RealWorld shape.
 */
import { rawRequest } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway, type Upstream } from './helpers.ts';

/** `{"errors": {"<field>": ["<message>"]}, "code": "<CODE>"}` with this code. */
function expectRealWorldError(body: unknown, code: string): void {
  expect(body).toMatchObject({ errors: expect.any(Object), code });
  const errors = Object.values((body as { errors: Record<string, unknown> }).errors);
  expect(errors.length).toBeGreaterThan(0);
  for (const messages of errors) {
    expect(Array.isArray(messages) && messages.every((m) => typeof m === 'string')).toBe(true);
  }
}

describe('error shapes and empty bodies at the gateway (buildApp, real redis-session)', () => {
  let gateway: TestGateway;
  let upstream: Upstream;
  let app: FastifyInstance;
  let port: number;

  beforeAll(async () => {
    gateway = await startGateway(
      { BODY_LIMIT_BYTES: '2048', RATE_LIMIT_ANONYMOUS_MAX: '100000' },
      { listen: true },
    );
    ({ app, upstream } = gateway);
    port = Number(new URL(gateway.url).port);
  });
  afterAll(() => gateway.close());

  it('an empty body with Content-Type: application/json passes the door, with or without Content-Length', async () => {
    upstream.received.length = 0;
    const json = { 'content-type': 'application/json' };
    const requests = [
      { method: 'POST', url: '/api/articles/a-slug/favorite', headers: { ...json, 'content-length': '0' } },
      { method: 'DELETE', url: '/api/articles/a-slug/favorite', headers: json },
      { method: 'POST', url: '/api/profiles/bob/follow', headers: { ...json, 'content-length': '0' } },
      { method: 'DELETE', url: '/api/articles/a-slug/comments/7', headers: json },
      { method: 'DELETE', url: '/api/user/session', headers: { ...json, 'content-length': '0' } },
    ] as const;
    for (const request of requests) {
      const res = await app.inject(request);
      expect(res.statusCode, `${request.method} ${request.url}`).toBe(200);
      expect(res.json()).toEqual({ upstream: true });
    }
    expect(upstream.received.map((r) => r.url)).toEqual(requests.map((r) => r.url));
    // Nothing to parse reaches the service: no body, and no Content-Type announcing one.
    for (const r of upstream.received) {
      expect(r.body ?? '').toBe('');
      expect(r.headers['content-type']).toBeUndefined();
    }
  });

  it('a chunked body that turns out empty is forwarded as it is', async () => {
    upstream.received.length = 0;
    const res = await rawRequest(
      `http://127.0.0.1:${port}`,
      'POST /api/articles/a-slug/favorite HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(res.status).toBe(200);
    expect(upstream.received).toHaveLength(1);
    expect(upstream.received[0]?.body).toBe('');
  });

  it('unknown routes: 404', async () => {
    for (const url of ['/nowhere', '/api/nowhere']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json()).toEqual({ errors: { route: ['not found'] }, code: 'NOT_FOUND' });
    }
  });

  it('a path that is not valid percent-encoding: 400, with the request id', async () => {
    const res = await app.inject({ url: '/api/articles/%E0%A4%A' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['x-request-id']).toBeTruthy();
    expectRealWorldError(res.json(), 'BAD_REQUEST');
  });

  it('a long slug is forwarded (the service decides), a URL over 8 KB is a 414 at the gateway', async () => {
    upstream.received.length = 0;
    const slug = 's'.repeat(2000);
    expect((await app.inject({ url: `/api/articles/${slug}` })).statusCode).toBe(200);
    expect(upstream.received[0]?.url).toBe(`/api/articles/${slug}`);
    upstream.received.length = 0;
    const long = await app.inject({ url: `/api/articles?tag=${'t'.repeat(9000)}` });
    expect(long.statusCode).toBe(414);
    expect(long.json()).toEqual({ errors: { url: ['is too long'] }, code: 'URI_TOO_LONG' });
    expect(upstream.received).toHaveLength(0);
  });

  it('a body that is not JSON: 415', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/articles',
      headers: { 'content-type': 'text/plain' },
      payload: 'hello',
    });
    expect(res.statusCode).toBe(415);
    expect(res.json()).toEqual({
      errors: { body: ['must be application/json'] },
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
  });

  it("what Node's parser refuses: 431 for 20 KB of headers, 400 for an unknown method, as JSON", async () => {
    const big = await rawRequest(
      `http://127.0.0.1:${port}`,
      `GET /api/tags HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20 * 1024)}\r\n\r\n`,
    );
    expect(big.status).toBe(431);
    expect(big.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(big.headers['content-length'])).toBe(big.bodyBytes);
    expect(big.headers.connection).toBe('close');
    expectRealWorldError(JSON.parse(big.body), 'HEADERS_TOO_LARGE');
    const method = await rawRequest(`http://127.0.0.1:${port}`, 'FROB /api/tags HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(method.status).toBe(400);
    expectRealWorldError(JSON.parse(method.body), 'BAD_REQUEST');
  });
});
