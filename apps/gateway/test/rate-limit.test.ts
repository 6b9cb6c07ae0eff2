/**
 * The rate limits on a real redis-session, through buildApp with a real upstream: each tier at its limit
 * and after its window, the client address (untrusted and trusted proxies, IPv6 /64), 404 floods, TTLs,
 * and what one request costs in Redis commands and round trips.
 */
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { RedisServer } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { startUpstream, testConfig, type Upstream } from './helpers.ts';

const silent = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate limits (buildApp, real redis-session)', () => {
  let redis: RedisServer;
  let client: RoleCheckedRedis;
  let upstream: Upstream;
  const apps: FastifyInstance[] = [];

  const gateway = async (env: Record<string, string> = {}) => {
    const config = testConfig(redis.url, upstream.url, {
      RATE_LIMIT_ANONYMOUS_MAX: '3',
      RATE_LIMIT_USER_MAX: '5',
      RATE_LIMIT_AUTH_MAX: '2',
      RATE_LIMIT_MAIL_MAX: '1',
      RATE_LIMIT_ANONYMOUS_WINDOW_S: '1',
      RATE_LIMIT_MAIL_WINDOW_S: '1',
      RATE_LIMIT_USER_WINDOW_S: '1',
      RATE_LIMIT_AUTH_WINDOW_S: '1',
      ...env,
    });
    const app = await buildApp(config);
    apps.push(app);
    return { app, config, sessions: new SessionStore(client, createKeys(config.keyPrefix)) };
  };

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    client = await connectRedis({ url: redis.url, role: 'session', use: 'producer', name: 't', log: silent });
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await Promise.all(apps.map((a) => a.close()));
    await upstream.server.close();
    await closeRedis(client);
    await redis.dispose();
  });

  it('anonymous: per address, 429 with Retry-After and RateLimit headers at the limit, reset after the window', async () => {
    const { app } = await gateway();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await app.inject({ url: '/api/tags' })).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await app.inject({ url: '/api/tags' });
    expect(refused.statusCode).toBe(429);
    expect(refused.json()).toEqual({
      errors: { rate: ['too many requests, try again later'] },
      code: 'RATE_LIMITED',
    });
    expect(Number(refused.headers['retry-after'])).toBe(1);
    expect(refused.headers['ratelimit-policy']).toBe('"anonymous";q=3;w=1');
    expect(refused.headers.ratelimit).toBe('"anonymous";r=0;t=1');
    expect(refused.headers['x-request-id']).toBeTruthy();
    // Another address has its own counter.
    expect((await app.inject({ url: '/api/tags', remoteAddress: '10.1.1.1' })).statusCode).toBe(200);
    await sleep(1100);
    const again = await app.inject({ url: '/api/tags' });
    expect(again.statusCode).toBe(200);
    expect(again.headers.ratelimit).toBe('"anonymous";r=2;t=1');
  });

  it('404 floods are limited too; health probes are not', async () => {
    const { app } = await gateway();
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await app.inject({ url: `/nope/${i}` })).statusCode);
    expect(statuses).toEqual([404, 404, 404, 429]);
    expect((await app.inject({ url: '/health/live' })).statusCode).toBe(200);
  });

  it('IPv6: one /64 shares one anonymous counter', async () => {
    const { app } = await gateway();
    const from = (remoteAddress: string) => app.inject({ url: '/api/tags', remoteAddress });
    for (const a of ['2001:db8:1:1::1', '2001:db8:1:1::2', '2001:db8:1:1:ffff::9'])
      expect((await from(a)).statusCode).toBe(200);
    expect((await from('2001:db8:1:1::77')).statusCode).toBe(429);
    expect((await from('2001:db8:1:2::1')).statusCode).toBe(200);
  });

  it('user: per user, whatever the address or session; anonymous callers are counted apart', async () => {
    const { app, sessions } = await gateway();
    const a1 = await sessions.create({ userId: 'u-a', username: 'ann', roles: ['user'] });
    const a2 = await sessions.create({ userId: 'u-a', username: 'ann', roles: ['user'] });
    const b = await sessions.create({ userId: 'u-b', username: 'bob', roles: ['user'] });
    const as = (token: string, remoteAddress = '127.0.0.1') =>
      app.inject({ url: '/api/articles/feed', headers: { authorization: `Token ${token}` }, remoteAddress });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++)
      statuses.push((await as(i % 2 ? a1.token : a2.token, `10.0.0.${i + 1}`)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
    const refused = await as(a1.token);
    expect(refused.headers['ratelimit-policy']).toBe('"user";q=5;w=1');
    expect((await as(b.token)).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/tags' })).statusCode).toBe(200);
  });

  it('address: a ceiling per address over every request, signed in or not, whatever the accounts', async () => {
    const { app, sessions } = await gateway({
      RATE_LIMIT_ADDRESS_MAX: '4',
      RATE_LIMIT_ADDRESS_WINDOW_S: '1',
    });
    const tokens: string[] = [];
    for (const id of ['u-c1', 'u-c2', 'u-c3'])
      tokens.push((await sessions.create({ userId: id, username: id, roles: ['user'] })).token);
    const as = (token: string | null, remoteAddress: string) =>
      app.inject({
        url: '/api/articles/feed',
        remoteAddress,
        headers: token ? { authorization: `Token ${token}` } : {},
      });
    // Three accounts (each far below its user limit of 5) and no account, from one /64.
    const statuses: number[] = [];
    for (const [i, token] of [tokens[0], tokens[1], null, tokens[2], tokens[0]].entries())
      statuses.push((await as(token ?? null, `2001:db8:9:9::${i + 1}`)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    const refused = await as(tokens[1] ?? '', '2001:db8:9:9::99');
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['ratelimit-policy']).toBe('"user";q=5;w=1, "address";q=4;w=1');
    expect(refused.json()).toMatchObject({ code: 'RATE_LIMITED' });
    // The same accounts from another address are fine.
    expect((await as(tokens[1] ?? '', '2001:db8:9:a::1')).statusCode).toBe(200);
    // Far from its ceiling, the address tier is not shown.
    const fresh = await as(tokens[2] ?? '', '10.3.3.3');
    expect(fresh.headers['ratelimit-policy']).toBe('"user";q=5;w=1');
  });

  it('/health/services counts as anonymous; /health/live, /health/ready and /metrics do not', async () => {
    // The notifier is down (nothing listens on port 9): reported unreachable, without the error text.
    const { app } = await gateway({ NOTIFIER_URL: 'http://127.0.0.1:9' });
    const from = { remoteAddress: '10.4.4.4' };
    for (let i = 0; i < 5; i++) {
      expect((await app.inject({ url: '/health/live', ...from })).statusCode).toBe(200);
      expect((await app.inject({ url: '/health/ready', ...from })).statusCode).toBe(200);
      expect((await app.inject({ url: '/metrics', ...from })).headers.ratelimit).toBeUndefined();
    }
    const first = await app.inject({ url: '/health/services', ...from });
    expect(first.statusCode).toBe(503);
    expect(first.json()).toMatchObject({ down: ['notifier'], services: { auth: { status: 'ready' } } });
    expect(first.json().services.notifier).toEqual({ status: 'unreachable' });
    expect(first.body).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|:9\b/);
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await app.inject({ url: '/health/services', ...from })).statusCode);
    expect(statuses).toEqual([503, 503, 429]);
  });

  it('auth endpoints: stricter, per address; rotating X-Forwarded-For from an untrusted peer changes nothing', async () => {
    const { app } = await gateway();
    const login = (xff: string) =>
      app.inject({
        method: 'POST',
        url: '/api/users/login',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': xff },
        payload: { user: { email: 'a@b.c', password: 'x' } },
      });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await login(`198.51.100.${i}`)).statusCode);
    expect(statuses).toEqual([200, 200, 429, 429]);
    const refused = await login('203.0.113.9');
    expect(refused.headers['ratelimit-policy']).toBe('"auth";q=2;w=1, "anonymous";q=3;w=1');
    expect(refused.headers['retry-after']).toBe('1');
    // Google sign-in's start counts in the same tier.
    expect((await app.inject({ url: '/api/auth/google', remoteAddress: '10.9.9.9' })).statusCode).toBe(200);
  });

  it('HEAD of an endpoint with its own tier costs what GET costs (HEAD runs the GET route)', async () => {
    const { app } = await gateway();
    const start = (method: 'GET' | 'HEAD') =>
      app.inject({ method, url: '/api/auth/google?returnTo=/', remoteAddress: '10.8.8.8' });
    const head = await start('HEAD');
    expect(head.headers['ratelimit-policy']).toBe('"auth";q=2;w=1, "anonymous";q=3;w=1');
    expect((await start('HEAD')).statusCode).toBe(200);
    // The auth tier (2) is spent by the two HEADs: GET is refused too.
    const get = await start('GET');
    expect(get.statusCode).toBe(429);
    expect(get.headers['ratelimit-policy']).toContain('"auth"');
  });

  it('endpoints that send email have their own, stricter tier', async () => {
    const { app } = await gateway();
    const reset = () =>
      app.inject({
        method: 'POST',
        url: '/api/users/password-reset',
        remoteAddress: '10.9.9.10',
        headers: { 'content-type': 'application/json' },
        payload: { user: { email: 'a@b.c' } },
      });
    expect((await reset()).statusCode).toBe(200);
    const refused = await reset();
    expect(refused.statusCode).toBe(429);
    expect(refused.headers['ratelimit-policy']).toBe('"mail";q=1;w=1, "anonymous";q=3;w=1');
    // Signing in from that address is another budget.
    const login = await app.inject({
      method: 'POST',
      url: '/api/users/login',
      remoteAddress: '10.9.9.10',
      headers: { 'content-type': 'application/json' },
      payload: { user: { email: 'a@b.c', password: 'x' } },
    });
    expect(login.statusCode).toBe(200);
  });

  it("a trusted proxy's X-Forwarded-For is honoured: each client behind it has its own counter", async () => {
    const { app } = await gateway({ TRUSTED_PROXIES: '127.0.0.0/8' });
    const login = (xff: string) =>
      app.inject({
        method: 'POST',
        url: '/api/users/login',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': xff },
        payload: { user: { email: 'a@b.c', password: 'x' } },
      });
    for (let i = 0; i < 2; i++) expect((await login('198.51.100.7')).statusCode).toBe(200);
    expect((await login('198.51.100.7')).statusCode).toBe(429);
    expect((await login('198.51.100.8')).statusCode).toBe(200);
    // The client address forwarded to services in the identity assertion is the same one.
    upstream.received.length = 0;
    await login('198.51.100.9');
    const { IdentityVerifier } = await import('@atoll/identity');
    const headers = upstream.received[0]?.headers ?? {};
    const { identityKeys } = await import('./helpers.ts');
    const auth = new IdentityVerifier({ audience: 'auth', publicKeys: [identityKeys.publicKey] });
    expect(
      auth.verify(String(headers['x-atoll-identity']), {
        method: 'POST',
        url: '/api/users/login',
        requestId: String(headers['x-request-id']),
      }),
    ).toMatchObject({ ok: true, clientIp: '198.51.100.9' });
  });

  it('every rate-limit key carries a TTL', async () => {
    const keys = await client.keys('*:rl:*');
    expect(keys.length).toBeGreaterThan(5);
    for (const key of keys) expect(await client.pttl(key), key).toBeGreaterThan(0);
  });

  it('an authenticated request costs one command in one round trip; no session write unless the refresh is due', async () => {
    const { app, sessions } = await gateway({
      RATE_LIMIT_USER_MAX: '1000',
      RATE_LIMIT_USER_WINDOW_S: '60',
      SESSION_REFRESH_INTERVAL_S: '1',
    });
    const { token } = await sessions.create({ userId: 'u-rt', username: 'rt', roles: ['user'] });
    const gatewayRedis = app.redis.session as RoleCheckedRedis;
    const request = () =>
      app.inject({ url: '/api/articles/feed', headers: { authorization: `Token ${token}` } });
    await request(); // loads the script once (EVALSHA falls back to EVAL the first time only)

    const measure = async () => {
      const before = await commandStats(client);
      const writes = countWrites(gatewayRedis);
      const res = await request();
      writes.stop();
      const after = await commandStats(client);
      expect(res.statusCode).toBe(200);
      return { roundTrips: writes.count, commands: diff(before, after) };
    };
    const steady = await measure();
    expect(steady.roundTrips).toBe(1);
    // Inside the script: the record, then the user's counter and the address's ceiling.
    expect(steady.commands).toEqual({ evalsha: 1, hgetall: 1, incr: 2, pttl: 2 });

    // Anonymous: its tier and the address's ceiling, in one command, one round trip.
    await app.inject({ url: '/api/tags' });
    const beforeAnonymousStats = await commandStats(client);
    const beforeAnonymous = countWrites(gatewayRedis);
    await app.inject({ url: '/api/tags' });
    beforeAnonymous.stop();
    expect(beforeAnonymous.count).toBe(1);
    expect(diff(beforeAnonymousStats, await commandStats(client))).toEqual({ evalsha: 1, incr: 2, pttl: 2 });

    // Once the refresh interval has passed: the same round trip, then one write that slides the TTL.
    await sleep(1100);
    const refresh = await measure();
    expect(refresh.roundTrips).toBe(2);
    expect(refresh.commands).toEqual({
      evalsha: 1,
      hgetall: 1,
      incr: 2,
      pttl: 2,
      multi: 1,
      hset: 1,
      pexpire: 1,
      exec: 1,
    });
  });
});

/** Calls per command from INFO commandstats (server-wide; the test's own INFO calls are left out). */
async function commandStats(client: RoleCheckedRedis): Promise<Record<string, number>> {
  const info = await client.info('commandstats');
  const out: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
    out[match[1] as string] = Number(match[2]);
  return out;
}

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after)) {
    const delta = calls - (before[name] ?? 0);
    if (delta > 0 && name !== 'info') out[name] = delta;
  }
  return out;
}

/**
 * Counts the writes the gateway's redis-session connection makes to its socket. ioredis writes a
 * command, a pipeline or a MULTI block in one write and waits for the answer: one write, one round trip.
 */
function countWrites(redis: RoleCheckedRedis): { count: number; stop(): void } {
  const stream = (redis as unknown as { stream: { write: (...args: unknown[]) => boolean } }).stream;
  const original = stream.write;
  const counter = {
    count: 0,
    stop: () => {
      stream.write = original;
    },
  };
  stream.write = function (this: unknown, ...args: unknown[]) {
    counter.count += 1;
    return original.apply(this, args);
  };
  return counter;
}
