/**
 * Auth under pressure and over time, with short limits so the windows pass within the test:
 * brute-force counters per account and address, per address and per account (and their TTLs), attempts
 * in parallel, idle and absolute session expiry, and redis-session going away.
 */
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { gatewayHeaders, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, IDENTITY_KEYS, redisOf, startTestStack } from './helpers.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('auth limits and expiry', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let sessionRedis: RoleCheckedRedis;
  let n = 0;
  const register = async () => {
    n += 1;
    const user = { username: `lim${n}`, email: `lim${n}@example.com`, password: 'correct horse' };
    const res = await api('POST', '/api/users', { body: { user } });
    expect(res.status).toBe(201);
    return { ...user, token: res.body.user.token as string };
  };
  const login = (email: string, password: string) =>
    api('POST', '/api/users/login', { body: { user: { email, password } } });
  /** Straight to auth, with the assertion the gateway would send for a client at `clientIp`. */
  const loginFrom = async (clientIp: string, email: string, password: string) => {
    const res = await fetch(`${stack.services.auth.url}/api/users/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...gatewayHeaders(IDENTITY_KEYS, 'auth', { method: 'POST', url: '/api/users/login', clientIp }),
      },
      body: JSON.stringify({ user: { email, password } }),
    });
    return res.status;
  };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('limits', {
      LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS: '3',
      LOGIN_MAX_FAILURES_PER_ADDRESS: '6',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '5',
      LOGIN_FAILURE_WINDOW_S: '2',
      SESSION_IDLE_TIMEOUT_S: '2',
      SESSION_ABSOLUTE_TIMEOUT_S: '5',
      SESSION_REFRESH_INTERVAL_S: '1',
    }));
    api = apiClient(stack.gatewayUrl);
    sessionRedis = await redisOf(stack, 'session');
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await dispose();
  });

  it('limits failed logins per account and address: 429 with Retry-After, even with the right password; the owner still gets in from elsewhere', async () => {
    const ada = await register();
    for (let i = 0; i < 3; i += 1) expect((await login(ada.email, 'wrong password')).status).toBe(401);
    const blocked = await login(ada.email, ada.password);
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(blocked.body).toEqual({
      errors: { login: ['too many failed attempts, try again later'] },
      code: 'AUTH_TOO_MANY_ATTEMPTS',
    });
    // Someone guessing from one address cannot lock the owner out: from another address they get in.
    expect(await loginFrom('198.51.100.1', ada.email, ada.password)).toBe(200);
    // Every counter carries a TTL.
    for (const key of await sessionRedis.keys('*login-fail*'))
      expect(await sessionRedis.pttl(key), key).toBeGreaterThan(0);

    await sleep(Number(blocked.headers.get('retry-after')) * 1000 + 200);
    expect((await login(ada.email, ada.password)).status).toBe(200);
  });

  it('has a per-account ceiling (5 failures from anywhere) against guessing spread over addresses', async () => {
    const ada = await register();
    const spread = await Promise.all(
      [2, 3, 4, 5, 6].map((i) => loginFrom(`198.51.100.${i}`, ada.email, 'wrong password')),
    );
    expect(spread).toEqual([401, 401, 401, 401, 401]);
    expect(await loginFrom('198.51.100.7', ada.email, ada.password)).toBe(429);
  });

  it('counts parallel wrong passwords before checking them: no more than the limit get an answer', async () => {
    await sleep(2200); // a clean window for this address
    const ada = await register();
    const statuses = await Promise.all(
      Array.from({ length: 20 }, () => loginFrom('198.51.100.20', ada.email, 'wrong password')),
    );
    expect(statuses.filter((s) => s === 401)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(17);
  });

  it('limits failed logins per address, across accounts, without saying which accounts exist', async () => {
    await sleep(2200); // a clean window for this address
    const [a, b, c] = [await register(), await register(), await register()];
    for (const email of [a.email, a.email, b.email, b.email, 'nobody@example.com', 'nobody2@example.com']) {
      expect((await login(email, 'wrong password')).status).toBe(401);
    }
    // This address is over its limit: even a correct login of an untouched account waits...
    const blocked = await login(c.email, c.password);
    expect(blocked.status).toBe(429);
    // ...and an unknown account gets the very same answer.
    const unknown = await login('ghost@example.com', 'whatever');
    expect(unknown.status).toBe(429);
    expect(unknown.body).toEqual(blocked.body);
    // Another address is not affected.
    expect(await loginFrom('198.51.100.2', c.email, c.password)).toBe(200);
    await sleep(Number(blocked.headers.get('retry-after')) * 1000 + 200);
    expect((await login(c.email, c.password)).status).toBe(200);
  });

  it('ends an unused session after the idle timeout, and any session at the absolute timeout', async () => {
    const idle = await register();
    const busy = await register();
    // Used every ~0.7 s, the busy session slides past its 2 s idle timeout...
    for (let i = 0; i < 5; i += 1) {
      await sleep(700);
      expect((await api('GET', '/api/user', { token: busy.token })).status).toBe(200);
    }
    // ...while the idle one, unused for that long, is gone.
    expect((await api('GET', '/api/user', { token: idle.token })).status).toBe(401);
    // The absolute timeout (5 s) ends the busy one however much it is used.
    for (let i = 0; i < 4; i += 1) {
      await sleep(500);
      await api('GET', '/api/user', { token: busy.token });
    }
    expect((await api('GET', '/api/user', { token: busy.token })).status).toBe(401);
  });

  it('answers 503 SESSION_STORE_UNAVAILABLE quickly on every auth endpoint while redis-session is down', async () => {
    const ada = await register();
    await stack.redis.session.stop();
    try {
      const calls: Array<[string, string, unknown?]> = [
        [
          'POST',
          '/api/users',
          { user: { username: 'down1', email: 'down1@example.com', password: 'correct horse' } },
        ],
        ['POST', '/api/users/login', { user: { email: ada.email, password: ada.password } }],
        ['GET', '/api/user'],
        ['GET', '/api/user/sessions'],
      ];
      for (const [method, path, body] of calls) {
        const started = Date.now();
        const res = await api(method, path, { body, token: ada.token });
        expect(res.status, `${method} ${path}`).toBe(503);
        expect(res.body.code, `${method} ${path}`).toBe('SESSION_STORE_UNAVAILABLE');
        // A bound against hanging, not a speed claim.
        expect(Date.now() - started, `${method} ${path}`).toBeLessThan(1000);
      }
    } finally {
      await stack.redis.session.restart();
    }
    // Registration failed as a whole: the account was not created, so it can be registered now, once
    // the gateway and auth have reconnected to redis-session (their clients back off between attempts).
    const back = await eventually(async () => {
      const [user, sessions] = await Promise.all([
        api('GET', '/api/user', { token: ada.token }),
        api('GET', '/api/user/sessions', { token: ada.token }),
      ]);
      return user.status === 200 && sessions.status === 200;
    }, 15_000);
    expect(back).toBe(true);
    const retry = await api('POST', '/api/users', {
      body: { user: { username: 'down1', email: 'down1@example.com', password: 'correct horse' } },
    });
    expect(retry.status).toBe(201);
  });
});
