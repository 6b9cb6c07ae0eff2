/**
 * Password hashing under pressure and guessing that must not lock the owner out (review findings N6 and
 * N5), through the whole stack: a hashing pool of one with a queue of one at a cost high enough that a
 * burst overflows it, password changes limited per account, and device cookies.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { startTestStack } from './helpers.ts';

describe('password hashing admission and lockout (N6, N5)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let n = 0;
  const register = async () => {
    n += 1;
    const user = { username: `pw${n}`, email: `pw${n}@example.com`, password: 'correct horse' };
    const res = await api('POST', '/api/users', { body: { user } });
    expect(res.status).toBe(201);
    return { ...user, token: res.body.user.token as string };
  };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('pw-limits', {
      // One hash at a time, one waiting, each long enough (128 MiB, 4 passes) that a burst overflows.
      PASSWORD_HASH_CONCURRENCY: '1',
      PASSWORD_HASH_QUEUE: '1',
      PASSWORD_ARGON2_MEMORY_KIB: '131072',
      PASSWORD_ARGON2_ITERATIONS: '4',
      PASSWORD_CHANGE_MAX: '2',
      // The test client is its own proxy: X-Forwarded-For sets the address each attempt comes from.
      TRUSTED_PROXIES: '127.0.0.1,::1',
      LOGIN_MAX_FAILURES_PER_ACCOUNT: '20',
      REAUTH_WINDOW_S: '1',
    }));
    api = apiClient(stack.gatewayUrl);
  }, 90_000);
  afterAll(async () => {
    await dispose?.();
  });

  it('a burst of logins beyond the hashing pool and its queue gets 503 AUTH_HASHING_BUSY with Retry-After; nothing else fails and the service stays healthy', async () => {
    // Six accounts, four logins each: within the limiter's 5 attempts in flight per account and address.
    const users = [];
    for (let i = 0; i < 6; i += 1) users.push(await register());
    const ada = users[0] as (typeof users)[number];
    const burst = await Promise.all(
      users.flatMap((u) =>
        Array.from({ length: 4 }, () =>
          api('POST', '/api/users/login', { body: { user: { email: u.email, password: u.password } } }),
        ),
      ),
    );
    const statuses = burst.map((r) => r.status);
    expect(
      statuses.every((s) => s === 200 || s === 503),
      statuses.join(),
    ).toBe(true);
    const busy = burst.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(burst.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    for (const res of busy) {
      expect(res.body).toEqual({
        errors: { password: ['checks are busy right now, try again shortly'] },
        code: 'AUTH_HASHING_BUSY',
      });
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
    // A refused login was never checked: it is no failed attempt, and the owner gets in right after.
    expect((await api('GET', '/health/ready')).status).toBe(200);
    const after = await api('POST', '/api/users/login', {
      body: { user: { email: ada.email, password: ada.password } },
    });
    expect(after.status).toBe(200);
  }, 60_000);

  it('limits password changes per account (429 AUTH_TOO_MANY_PASSWORD_CHANGES with Retry-After); the current password sent again changes nothing', async () => {
    const ada = await register();
    const other = await api('POST', '/api/users/login', {
      body: { user: { email: ada.email, password: ada.password } },
    });
    expect(other.status).toBe(200);
    const change = (password: string) =>
      api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { password, currentPassword: ada.password } },
      });

    // The same password again: no new hash and no count, so nothing changed and the other session lives on.
    expect((await change(ada.password)).status).toBe(200);
    expect((await api('GET', '/api/user', { token: other.body.user.token })).status).toBe(200);

    // A new one: the other session ends.
    expect((await change('a much better horse')).status).toBe(200);
    ada.password = 'a much better horse';
    expect((await api('GET', '/api/user', { token: other.body.user.token })).status).toBe(401);
    expect((await change('an even better horse')).status).toBe(200);
    ada.password = 'an even better horse';

    // Two changes in the window were allowed; the third is refused before any new hash.
    const over = await change('yet another horse');
    expect(over.status).toBe(429);
    expect(over.body).toEqual({
      errors: { password: ['was changed too often, try again later'] },
      code: 'AUTH_TOO_MANY_PASSWORD_CHANGES',
    });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(1);
    // Other changes of the account are not limited by it.
    expect((await api('PUT', '/api/user', { token: ada.token, body: { user: { bio: 'hi' } } })).status).toBe(
      200,
    );
    expect(
      (
        await api('POST', '/api/users/login', {
          body: { user: { email: ada.email, password: ada.password } },
        })
      ).status,
    ).toBe(200);
  }, 60_000);

  /**
   * A login through the gateway from `address` (as a trusted proxy forwards it); `browser` sends what a
   * browser sends (`Sec-Fetch-Site`) and the device cookie, if any. Returns the status and any new device
   * cookie the answer sets.
   */
  const loginAs = async (
    address: string,
    email: string,
    password: string,
    browser: { device?: string | null } | null = null,
  ) => {
    const headers: Record<string, string> = { 'x-forwarded-for': address };
    if (browser) headers['sec-fetch-site'] = 'same-origin';
    if (browser?.device) headers.cookie = `atoll_device=${browser.device}`;
    const res = await fetch(`${stack.gatewayUrl}/api/users/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ user: { email, password } }),
    });
    const body = (await res.json().catch(() => null)) as { user?: { token?: string } } | null;
    const cookies = res.headers.getSetCookie();
    const device = cookies.find((c) => c.startsWith('atoll_device='));
    return {
      status: res.status,
      retryAfter: res.headers.get('retry-after'),
      device: device ? (/^atoll_device=([^;]+)/.exec(device)?.[1] ?? null) : null,
      deviceCookie: device ?? null,
      sessionCookie: cookies.some((c) => c.startsWith('atoll_session=')),
      token: body?.user?.token ?? '',
    };
  };

  it('guessing from 25 addresses reaches the per-account ceiling, yet the owner with a device cookie still gets in (and re-authenticates); without one, 429', async () => {
    const ada = await register();
    // The owner signs in from a browser once: the answer sets a device cookie beside the session cookie.
    const first = await loginAs('198.51.100.10', ada.email, ada.password, {});
    expect(first.status).toBe(200);
    expect(first.sessionCookie).toBe(true);
    expect(first.deviceCookie).toMatch(
      /^atoll_device=[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/,
    );
    const device = first.device as string;
    // An API client (no Sec-Fetch-Site) gets no device cookie, as it gets no session cookie.
    expect((await loginAs('198.51.100.11', ada.email, ada.password)).deviceCookie).toBeNull();

    // An attacker guesses from 25 addresses: after 20 failures the account is at its ceiling.
    const guesses = [];
    for (let i = 1; i <= 25; i += 1)
      guesses.push((await loginAs(`203.0.113.${i}`, ada.email, 'guess')).status);
    expect(guesses.filter((s) => s === 401)).toHaveLength(20);
    expect(guesses.filter((s) => s === 429)).toHaveLength(5);

    // The owner from a fresh address: refused without the device cookie (today's limits)...
    const untrusted = await loginAs('198.51.100.12', ada.email, ada.password, {});
    expect(untrusted.status).toBe(429);
    expect(Number(untrusted.retryAfter)).toBeGreaterThanOrEqual(1);
    // ...and let in with it, from anywhere; the cookie stays (no new one is set).
    const trusted = await loginAs('198.51.100.13', ada.email, ada.password, { device });
    expect(trusted.status).toBe(200);
    expect(trusted.deviceCookie).toBeNull();

    // Re-authentication (a password change with the current password, past the 1 s window after the
    // sign-in) is counted the same way: refused at the ceiling without the device cookie, let in with it.
    await new Promise((r) => setTimeout(r, 1300));
    const changeFrom = (address: string, withDevice: boolean) =>
      api('PUT', '/api/user', {
        token: trusted.token,
        headers: { 'x-forwarded-for': address, ...(withDevice ? { cookie: `atoll_device=${device}` } : {}) },
        body: { user: { password: 'a fresh horse', currentPassword: ada.password } },
      });
    const refusedChange = await changeFrom('198.51.100.15', false);
    expect(refusedChange.status).toBe(429);
    expect(refusedChange.body.code).toBe('AUTH_TOO_MANY_ATTEMPTS');
    expect((await changeFrom('198.51.100.16', true)).status).toBe(200);
    ada.password = 'a fresh horse';

    // A stolen device cookie is no master key: 5 wrong passwords with it, then the device is refused too.
    const stolen = [];
    for (let i = 0; i < 6; i += 1)
      stolen.push((await loginAs(`192.0.2.${i + 1}`, ada.email, 'guess', { device })).status);
    expect(stolen).toEqual([401, 401, 401, 401, 401, 429]);
    // A device cookie of another account trusts nothing: the untrusted limits apply.
    const bob = await register();
    expect((await loginAs('198.51.100.14', bob.email, bob.password, { device })).status).toBe(200);
  }, 120_000);

  it('counts IPv6 clients by /64, /56 and /48: addresses in one /64 are one place, and so are /64s in one /56', async () => {
    const ada = await register();
    // Five wrong passwords from five addresses of one /64: the per-account-and-address limit (5).
    for (let i = 1; i <= 5; i += 1)
      expect((await loginAs(`2001:db8:1:1::${i}`, ada.email, 'guess')).status).toBe(401);
    expect((await loginAs('2001:db8:1:1::99', ada.email, ada.password)).status).toBe(429);
    // Another /64 of the same /56 is another place for that limit...
    expect((await loginAs('2001:db8:1:2::1', ada.email, ada.password)).status).toBe(200);

    // ...but the /56 has its own ceiling per account (10): two failures from each of five /64s in it.
    const bob = await register();
    for (const net of ['100', '101', '102', '103', '104']) {
      for (let i = 1; i <= 2; i += 1) {
        expect((await loginAs(`2001:db8:2:${net}::${i}`, bob.email, 'guess')).status).toBe(401);
      }
    }
    expect((await loginAs('2001:db8:2:1ff::1', bob.email, bob.password)).status).toBe(429);
    // Another /56 of the same /48 (the /48's own ceiling, 20, is not reached).
    expect((await loginAs('2001:db8:2:200::1', bob.email, bob.password)).status).toBe(200);
  }, 120_000);
});
