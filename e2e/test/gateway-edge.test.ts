/**
 * The gateway against upstreams that misbehave, with the gateway as a real process: an upstream that is
 * down (502), one that is too slow (504), what headers reach an upstream, and SIGTERM during a slow
 * request (the request completes, the process exits 0 within the grace period). Then its rate-limit
 * store: redis-session going away and coming back (fail open, logged once, counted), and the gateway
 * SIGKILLed in a loop under load without ever leaving a counter that has no TTL.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { IdentityVerifier } from '@atoll/identity';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { freePort, identityKeyPair, RedisServer, ServiceProcess } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

describe('gateway edge cases (gateway process, in-test upstreams)', () => {
  let redis: RedisServer;
  let upstream: FastifyInstance;
  let upstreamUrl: string;
  const seen: Array<Record<string, string | string[] | undefined>> = [];
  let slowArrived: () => void = () => {};
  const gatewayKeys = identityKeyPair();

  const startGateway = async (extra: Record<string, string> = {}) => {
    const deadPort = await freePort(); // nothing listens there
    return ServiceProcess.start('gateway', {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      IDENTITY_PRIVATE_KEY: gatewayKeys.privateKeyText,
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
      slowArrived();
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
    // A refused connection is answered at once; the long budget keeps a busy machine's first request
    // (compiling, the first signature) from turning it into a 504.
    const gateway = await startGateway({ UPSTREAM_TIMEOUT_MS: '5000' });
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
      const auth = new IdentityVerifier({ audience: 'auth', publicKeys: [gatewayKeys.publicKey] });
      expect(
        auth.verify(String(headers['x-atoll-identity']), {
          method: 'GET',
          url: '/api/user?x=1',
          requestId: String(headers['x-request-id']),
        }),
      ).toMatchObject({ ok: true, identity: null, clientIp: '127.0.0.1', sessionUnavailable: false });
      expect(headers['x-secret-hop']).toBeUndefined();
      expect(headers['x-custom']).toBe('kept');
    } finally {
      await gateway.stop();
    }
  });

  it('SIGTERM during a slow request: the request completes and the process exits 0', async () => {
    const gateway = await startGateway({ UPSTREAM_TIMEOUT_MS: '5000' });
    const arrived = new Promise<void>((resolve) => {
      slowArrived = resolve;
    });
    const pending = fetch(`${gateway.url}/api/user/slow`);
    await arrived;
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

describe('the rate-limit store under failure (gateway process, its own redis-session)', () => {
  const silent = { info() {}, warn() {}, error() {} };
  const metricsToken = randomBytes(24).toString('hex');
  let redis: RedisServer;
  let upstream: FastifyInstance;
  let upstreamUrl: string;

  const startGateway = (extra: Record<string, string> = {}) =>
    ServiceProcess.start('gateway', {
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'info',
      IDENTITY_PRIVATE_KEY: identityKeyPair().privateKeyText,
      REDIS_SESSION_URL: redis.url,
      REDIS_KEY_PREFIX: 'edge',
      AUTH_URL: upstreamUrl,
      CONTENT_URL: upstreamUrl,
      NOTIFIER_URL: upstreamUrl,
      METRICS_TOKEN: metricsToken,
      ...extra,
    });

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    upstream = Fastify();
    upstream.all('/*', async () => ({ ok: true }));
    upstreamUrl = await upstream.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(async () => {
    await upstream.close();
    await redis.dispose();
  });

  it('store down: requests keep flowing under the in-memory limit, logged once, counted; Redis again once back', async () => {
    const gateway = await startGateway({ RATE_LIMIT_ANONYMOUS_MAX: '5' });
    try {
      expect((await fetch(`${gateway.url}/api/tags`)).status).toBe(200);
      await redis.stop();
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) {
        // A request that hung on the store would abort here and fail the test.
        statuses.push((await fetch(`${gateway.url}/api/tags`, { signal: AbortSignal.timeout(5000) })).status);
      }
      // A fresh window in memory: five requests pass, then the limit holds.
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const outage = (l: { msg?: unknown }) => String(l.msg).startsWith('rate-limit store unavailable');
      await gateway.waitForLog(outage);
      expect(gateway.logs.filter(outage)).toHaveLength(1);
      const metrics = await fetch(`${gateway.url}/metrics`, {
        headers: { authorization: `Bearer ${metricsToken}` },
      });
      expect(await metrics.text()).toContain(
        'gateway_rate_limit_fallbacks_total{reason="memory",service="gateway"} 7',
      );

      await redis.restart();
      let back = false;
      for (let i = 0; i < 50 && !back; i++) {
        await new Promise((r) => setTimeout(r, 200));
        await fetch(`${gateway.url}/api/tags`);
        back = gateway.logs.some(
          (l) => l.msg === 'rate-limit store is back, counting in redis-session again',
        );
      }
      expect(back).toBe(true);
      const client = await connectRedis({
        url: redis.url,
        role: 'session',
        use: 'producer',
        name: 't',
        log: silent,
      });
      try {
        expect(await client.get('edge:rl:{anonymous:127.0.0.1}')).not.toBeNull();
      } finally {
        await closeRedis(client);
      }
    } finally {
      await gateway.stop();
    }
  });

  it('SIGKILL in a loop under load never leaves a rate-limit counter without a TTL', async () => {
    const client = await connectRedis({
      url: redis.url,
      role: 'session',
      use: 'producer',
      name: 't',
      log: silent,
    });
    const store = new SessionStore(client, createKeys('edge'));
    const tokens = await Promise.all(
      [1, 2, 3].map(
        async (i) => (await store.create({ userId: `k${i}`, username: `k${i}`, roles: [] })).token,
      ),
    );
    try {
      let counted = 0;
      for (let round = 0; round < 6; round++) {
        const gateway = await startGateway();
        let stop = false;
        const worker = async (i: number) => {
          while (!stop) {
            const headers: Record<string, string> = i % 2 ? { authorization: `Token ${tokens[i % 3]}` } : {};
            if (i % 3 === 0) headers['x-forwarded-for'] = `198.51.100.${i}`;
            await fetch(`${gateway.url}/api/${i % 4 === 0 ? 'users/login' : 'tags'}`, {
              method: i % 4 === 0 ? 'POST' : 'GET',
              headers: { ...headers, ...(i % 4 === 0 ? { 'content-type': 'application/json' } : {}) },
              ...(i % 4 === 0 ? { body: '{}' } : {}),
            }).catch(() => undefined);
          }
        };
        const load = Array.from({ length: 16 }, (_, i) => worker(i));
        await new Promise((r) => setTimeout(r, 150 + round * 60));
        gateway.child.kill('SIGKILL');
        await gateway.exited;
        stop = true;
        await Promise.all(load);
        const keys = await client.keys('edge:rl:*');
        counted += keys.length;
        for (const key of keys) expect(await client.pttl(key), key).not.toBe(-1);
      }
      expect(counted).toBeGreaterThan(0);
    } finally {
      await closeRedis(client);
    }
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
