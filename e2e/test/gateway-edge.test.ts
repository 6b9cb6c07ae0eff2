/**
 * The gateway against upstreams that misbehave, with the gateway as a real process: an upstream that is
 * down (502), one that is too slow (504), what headers reach an upstream, and SIGTERM during a slow
 * request (the request completes, the process exits 0 within the grace period).
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { verifyIdentity } from '@atoll/identity';
import { freePort, RedisServer, ServiceProcess } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('gateway edge cases (gateway process, in-test upstreams)', () => {
  let redis: RedisServer;
  let upstream: FastifyInstance;
  let upstreamUrl: string;
  const seen: Array<Record<string, string | string[] | undefined>> = [];
  const gatewaySecret = randomBytes(32).toString('hex');

  const startGateway = async (extra: Record<string, string> = {}) => {
    const deadPort = await freePort(); // nothing listens there
    return ServiceProcess.start('gateway', {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      IDENTITY_SECRET: gatewaySecret,
      REDIS_SESSION_URL: redis.url,
      AUTH_URL: upstreamUrl,
      CONTENT_URL: `http://127.0.0.1:${deadPort}`,
      NOTIFIER_URL: upstreamUrl,
      UPSTREAM_TIMEOUT_MS: '500',
      SHUTDOWN_GRACE_MS: '5000',
      ...extra,
    });
  };

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    upstream = Fastify();
    upstream.get('/api/user', async (request) => {
      seen.push(request.headers);
      return { ok: true };
    });
    upstream.get('/api/notifications', async () => {
      await new Promise((r) => setTimeout(r, 2000));
      return { late: true };
    });
    upstream.get('/api/user/slow', async () => {
      await new Promise((r) => setTimeout(r, 1200));
      return { finished: true };
    });
    upstreamUrl = await upstream.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await upstream.close();
    await redis.dispose();
  });

  it('answers 502 in the RealWorld shape when the upstream is down', async () => {
    const gateway = await startGateway();
    try {
      const res = await fetch(`${gateway.url}/api/articles`);
      expect(res.status).toBe(502);
      expect(await res.json()).toEqual({
        errors: { upstream: ['content is unavailable'] },
        code: 'GATEWAY_UPSTREAM_UNAVAILABLE',
      });
    } finally {
      await gateway.stop();
    }
  });

  it('answers 504 when the upstream is slower than UPSTREAM_TIMEOUT_MS', async () => {
    const gateway = await startGateway();
    try {
      const started = Date.now();
      const res = await fetch(`${gateway.url}/api/notifications`);
      expect(res.status).toBe(504);
      expect(await res.json()).toEqual({
        errors: { upstream: ['notifier did not answer in time'] },
        code: 'GATEWAY_UPSTREAM_TIMEOUT',
      });
      expect(Date.now() - started).toBeLessThan(1900);
    } finally {
      await gateway.stop();
    }
  });

  it('forwards its request id, drops hop-by-hop and client-sent internal headers', async () => {
    const gateway = await startGateway();
    try {
      seen.length = 0;
      // node:http, because fetch refuses to send a Connection header.
      const res = await rawGet(`${gateway.url}/api/user?x=1`, {
        'x-request-id': 'client-chosen',
        'x-atoll-identity': 'v1.forged.forged',
        'x-atoll-anything': 'nope',
        connection: 'keep-alive, x-secret-hop',
        'x-secret-hop': 'hop',
        'x-custom': 'kept',
      });
      expect(res.status).toBe(200);
      const headers = seen[0] ?? {};
      expect(headers['x-request-id']).toBe(res.headers['x-request-id']);
      expect(headers['x-request-id']).not.toBe('client-chosen');
      // The only internal header is the gateway's own assertion: anonymous, from the real client address.
      expect(Object.keys(headers).filter((h) => h.startsWith('x-atoll-'))).toEqual(['x-atoll-identity']);
      expect(
        verifyIdentity(String(headers['x-atoll-identity']), {
          secrets: [gatewaySecret],
          requestId: String(headers['x-request-id']),
        }),
      ).toEqual({ ok: true, identity: null, clientIp: '127.0.0.1' });
      expect(headers['x-secret-hop']).toBeUndefined();
      expect(headers['x-custom']).toBe('kept');
    } finally {
      await gateway.stop();
    }
  });

  it('SIGTERM during a slow request: the request completes and the process exits 0', async () => {
    const gateway = await startGateway({ UPSTREAM_TIMEOUT_MS: '5000' });
    const pending = fetch(`${gateway.url}/api/user/slow`);
    await gateway.waitForLog(
      (l) =>
        l.msg === 'incoming request' && String(l.req && (l.req as { url?: string }).url) === '/api/user/slow',
    );
    const signalled = Date.now();
    gateway.child.kill('SIGTERM');
    const res = await pending;
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ finished: true });
    const exit = await gateway.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(5000);
    // New connections are refused once shutdown started.
    await expect(fetch(`${gateway.url}/health/live`)).rejects.toThrow();
  });
});

function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}
