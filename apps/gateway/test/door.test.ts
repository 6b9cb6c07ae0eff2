/**
 * At the door (buildApp, real redis-session, real upstream): CORS preflight for allowed and other
 * origins, security headers, 413, per-route upstream timeouts, the request id on every response,
 * /metrics behind its token, the docs page from the npm package, and a rate-limit store that is down.
 */
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { RedisServer } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { startUpstream, testConfig, type Upstream } from './helpers.ts';

const silent = { info() {}, warn() {}, error() {} };
const METRICS_TOKEN = 'm'.repeat(40);

describe('the gateway at the door (buildApp, real redis-session)', () => {
  let redis: RedisServer;
  let client: RoleCheckedRedis;
  let upstream: Upstream;
  let app: FastifyInstance;

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    client = await connectRedis({ url: redis.url, role: 'session', use: 'producer', name: 't', log: silent });
    upstream = await startUpstream();
    app = await buildApp(
      testConfig(redis.url, upstream.url, {
        CORS_ORIGINS: 'https://app.example.com',
        BODY_LIMIT_BYTES: '2048',
        UPSTREAM_TIMEOUT_MS: '5000',
        UPSTREAM_ROUTE_TIMEOUTS: '/api/articles/slow=300',
        METRICS_TOKEN,
      }),
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.server.close();
    await closeRedis(client);
    await redis.dispose();
  });

  it("CORS: an allowed origin's preflight succeeds, another origin's gets no CORS headers", async () => {
    const preflight = (origin: string) =>
      app.inject({
        method: 'OPTIONS',
        url: '/api/articles',
        headers: {
          origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type',
        },
      });
    const allowed = await preflight('https://app.example.com');
    expect(allowed.statusCode).toBe(204);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(allowed.headers['access-control-allow-credentials']).toBe('true');
    expect(String(allowed.headers['access-control-allow-methods'])).toContain('POST');
    expect(allowed.headers['x-request-id']).toBeTruthy();
    const other = await preflight('https://evil.example.net');
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    // A simple request from the allowed origin can read the request id and the limits.
    const get = await app.inject({ url: '/api/tags', headers: { origin: 'https://app.example.com' } });
    expect(get.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(String(get.headers['access-control-expose-headers'])).toContain('x-request-id');
  });

  it('security headers on every response', async () => {
    const res = await app.inject({ url: '/api/tags' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain("default-src 'none'");
    expect(res.headers['strict-transport-security']).toBeTruthy();
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN');
  });

  it('a body over the limit is a 413 in the RealWorld shape, and never reaches the service', async () => {
    upstream.received.length = 0;
    const res = await app.inject({
      method: 'POST',
      url: '/api/articles',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({ article: { body: 'x'.repeat(4096) } }),
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ errors: { body: ['is too large'] }, code: 'PAYLOAD_TOO_LARGE' });
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(upstream.received).toHaveLength(0);
  });

  it("a route's own upstream timeout: 504 after it, while the default still applies elsewhere", async () => {
    const slow = await app.inject({ url: '/api/articles/slow' });
    expect(slow.statusCode).toBe(504);
    expect(slow.json()).toEqual({
      errors: { upstream: ['content did not answer in time'] },
      code: 'GATEWAY_UPSTREAM_TIMEOUT',
    });
    expect((await app.inject({ url: '/api/articles' })).statusCode).toBe(200);
  });

  it('/metrics needs the bearer token; it counts requests, rejections and upstream errors', async () => {
    expect((await app.inject({ url: '/metrics' })).statusCode).toBe(401);
    const wrong = await app.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${'x'.repeat(40)}` },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual({
      errors: { metrics: ['need the metrics bearer token'] },
      code: 'METRICS_UNAUTHORIZED',
    });
    const res = await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain');
    const text = res.body;
    expect(text).toMatch(
      /http_requests_total\{method="GET",route="\/api\/articles\/\*",status="504",service="gateway"\} 1/,
    );
    expect(text).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/api\/tags"\} [1-9]/);
    expect(text).toContain(
      'gateway_upstream_errors_total{upstream="content",kind="timeout",service="gateway"} 1',
    );
    expect(text).toContain('# TYPE gateway_rate_limit_rejections_total counter');
    expect(text).toContain('# TYPE gateway_rate_limit_fallbacks_total counter');
  });

  it('GET /api/docs: the Scalar page and its script come from the gateway, nothing from a CDN', async () => {
    const redirect = await app.inject({ url: '/api/docs' });
    expect(redirect.statusCode).toBe(301);
    const page = await app.inject({ url: '/api/docs/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('/api/openapi.json');
    expect(page.body).not.toMatch(/(src|href)="https?:/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    const script = await app.inject({ url: '/api/docs/js/scalar.js' });
    expect(script.statusCode).toBe(200);
    expect(script.headers['content-type']).toContain('javascript');
    expect(script.body.length).toBeGreaterThan(100_000);
    // Anything else under the prefix is the gateway's own 404, in the RealWorld error shape.
    const unknown = await app.inject({ url: '/api/docs/nothing-here' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toHaveProperty('errors');
  });
});

describe('rate-limit store down (buildApp, redis-session stopped)', () => {
  let redis: RedisServer;
  let upstream: Upstream;
  const apps: FastifyInstance[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await upstream.server.close();
    await redis.dispose();
  });

  it('fails open to the in-memory limit by default, closed (503) when configured so, never hanging', async () => {
    const build = async (onError: string) => {
      const app = await buildApp(
        testConfig(redis.url, upstream.url, {
          RATE_LIMIT_ANONYMOUS_MAX: '3',
          RATE_LIMIT_ON_STORE_ERROR: onError,
          METRICS_TOKEN,
        }),
      );
      apps.push(app);
      return app;
    };
    const open = await build('open');
    const closed = await build('closed');
    await redis.stop();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await open.inject({ url: '/api/tags' })).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await closed.inject({ url: '/api/tags' });
    expect(refused.statusCode).toBe(503);
    expect(refused.json()).toMatchObject({ code: 'RATE_LIMIT_UNAVAILABLE' });
    const metrics = await open.inject({
      url: '/metrics',
      headers: { authorization: `Bearer ${METRICS_TOKEN}` },
    });
    expect(metrics.body).toContain('gateway_rate_limit_fallbacks_total{reason="memory",service="gateway"} 4');
    await redis.restart();
  });
});
