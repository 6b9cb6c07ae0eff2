/**
 * Password hashing under pressure and guessing that must not lock the owner out (review findings N6 and
 * N5), through the whole stack: a hashing pool of one with a queue of one at a cost high enough that a
 * burst overflows it, password changes limited per account, and device cookies.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, startTestStack } from './helpers.ts';

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
      REGISTRATION_MAX_PER_ADDRESS: '20',
      DEVICE_COOKIE_MAX_PER_ACCOUNT: '3',
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
    const changed = await changeFrom('198.51.100.16', true);
    expect(changed.status).toBe(200);
    ada.password = 'a fresh horse';
    // The new password ended the trust of every device cookie of the account; the browser that changed
    // it gets a new one.
    const renewed = changed.headers.getSetCookie().find((c) => c.startsWith('atoll_device='));
    expect(renewed).toMatch(/^atoll_device=[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
    const newDevice = /^atoll_device=([^;]+)/.exec(renewed as string)?.[1] as string;
    expect((await loginAs('198.51.100.17', ada.email, ada.password, { device })).status).toBe(429);

    // A stolen device cookie is no master key: 5 wrong passwords with it, then the device is refused too.
    const stolen = [];
    for (let i = 0; i < 6; i += 1)
      stolen.push((await loginAs(`192.0.2.${i + 1}`, ada.email, 'guess', { device: newDevice })).status);
    expect(stolen).toEqual([401, 401, 401, 401, 401, 429]);
    // A device cookie of another account trusts nothing: the untrusted limits apply.
    const bob = await register();
    expect((await loginAs('198.51.100.14', bob.email, bob.password, { device })).status).toBe(200);
  }, 120_000);

  it('limits sign-ups per address and per IPv6 /64, /56 and /48 (429 AUTH_TOO_MANY_REGISTRATIONS with Retry-After)', async () => {
    const signUp = async (address: string) => {
      n += 1;
      const user = { username: `su${n}`, email: `su${n}@example.com`, password: 'correct horse' };
      return api('POST', '/api/users', { headers: { 'x-forwarded-for': address }, body: { user } });
    };
    // Twenty from three /64s of one /48 (and one /56): the /48's allowance.
    const statuses = [];
    for (let i = 0; i < 20; i += 1)
      statuses.push((await signUp(`2001:db8:5:${(i % 3) + 1}::${i + 1}`)).status);
    expect(statuses.every((s) => s === 201)).toBe(true);
    // A fourth /64, in another /56 of the same /48, is over it: refused before any hash.
    const over = await signUp('2001:db8:5:400::1');
    expect(over.status).toBe(429);
    expect(over.body).toEqual({
      errors: { user: ['too many sign-ups from this address, try again later'] },
      code: 'AUTH_TOO_MANY_REGISTRATIONS',
    });
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(1);
    // Another /48, and an IPv4 address, sign up as before.
    expect((await signUp('2001:db8:6:1::1')).status).toBe(201);
    expect((await signUp('192.0.2.77')).status).toBe(201);
  }, 120_000);

  it('binds a device cookie to the account and its password: cookies minted on an address before its owner registered it never count for her account (review finding B)', async () => {
    // The attacker registers the victim's address and mints device cookies, one per browser login.
    const victim = { username: 'victim', email: 'victim@example.com', password: 'quiet lantern 41' };
    const squatter = { username: 'squatter', email: victim.email, password: 'brass kettle 77' };
    const from = { 'x-forwarded-for': '203.0.113.200' };
    const squatted = await api('POST', '/api/users', { headers: from, body: { user: squatter } });
    expect(squatted.status).toBe(201);
    const minted: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const res = await loginAs('203.0.113.200', victim.email, squatter.password, {});
      expect(res.status).toBe(200);
      minted.push(res.device as string);
    }
    // The account keeps its 3 newest: the 2 oldest count for nothing even there.
    expect(
      (await loginAs('203.0.113.202', victim.email, squatter.password, { device: minted[0] })).device,
    ).not.toBeNull();
    expect(
      (await loginAs('203.0.113.202', victim.email, squatter.password, { device: minted[4] })).device,
    ).toBeNull();
    // He moves his account to another address, and the victim registers hers.
    const moved = await api('PUT', '/api/user', {
      token: squatted.body.user.token,
      headers: from,
      body: { user: { email: 'elsewhere@example.com', currentPassword: squatter.password } },
    });
    expect(moved.status).toBe(200);
    const mine = await api('POST', '/api/users', {
      headers: { 'x-forwarded-for': '198.51.100.30' },
      body: { user: victim },
    });
    expect(mine.status).toBe(201);
    const owner = await loginAs('198.51.100.30', victim.email, victim.password, {});
    expect(owner.status).toBe(200);
    const ownDevice = owner.device as string;

    // With the pre-minted cookies he guesses her password: counted as any stranger, per account and
    // address (5), then refused.
    const guesses = [];
    for (let i = 0; i < 25; i += 1) {
      const device = minted[i % minted.length] as string;
      guesses.push((await loginAs('203.0.113.201', victim.email, `guess ${i}`, { device })).status);
    }
    expect(guesses).toEqual([...Array(5).fill(401), ...Array(20).fill(429)]);

    // Her own device cookie still counts for her (no new one is set), from anywhere.
    const again = await loginAs('198.51.100.31', victim.email, victim.password, { device: ownDevice });
    expect(again.status).toBe(200);
    expect(again.device).toBeNull();
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

describe('a sign-up flood leaves the hashing pool to those signing in (review finding A)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('signup-flood', {
      // The pool as deployed on two cores (two at once, eight waiting, four per client), each hash long
      // enough (128 MiB, 4 passes) that the flood below keeps it full; sign-ups not limited by count here,
      // so the pool alone must keep its places for logins.
      PASSWORD_HASH_CONCURRENCY: '2',
      PASSWORD_HASH_QUEUE: '8',
      PASSWORD_HASH_PER_CLIENT: '4',
      PASSWORD_ARGON2_MEMORY_KIB: '131072',
      PASSWORD_ARGON2_ITERATIONS: '4',
      TRUSTED_PROXIES: '127.0.0.1,::1',
    }));
  }, 90_000);
  afterAll(async () => {
    await dispose?.();
  });

  const post = async (address: string, path: string, user: Record<string, string>) => {
    const res = await fetch(`${stack.gatewayUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
      body: JSON.stringify({ user }),
    });
    await res.arrayBuffer();
    return res.status;
  };

  it('registrations kept in flight from three /64s of one /48 and from three IPv4 addresses never make a login from elsewhere answer 503', async () => {
    const owner = { username: 'owner', email: 'owner@example.com', password: 'correct horse' };
    expect(await post('198.51.100.200', '/api/users', owner)).toBe(201);

    // Four sign-ups kept in flight from each of six places: 24, more than the pool's ten places.
    const places = [
      '2001:db8:1:1::1',
      '2001:db8:1:2::1',
      '2001:db8:1:3::1',
      '192.0.2.1',
      '198.18.0.1',
      '203.0.113.1',
    ];
    let stop = false;
    let made = 0;
    const flood: number[] = [];
    const worker = async (address: string) => {
      while (!stop) {
        made += 1;
        const i = made;
        const status = await post(address, '/api/users', {
          username: `flood${i}`,
          email: `flood${i}@example.com`,
          password: 'correct horse',
        });
        flood.push(status);
        if (status !== 201) await new Promise((r) => setTimeout(r, 50));
      }
    };
    const workers = places.flatMap((address) => Array.from({ length: 4 }, () => worker(address)));
    try {
      // The flood is pressing once the pool turns sign-ups away.
      expect(await eventually(async () => flood.includes(503), 30_000)).toBe(true);
      const logins = [];
      for (let i = 0; i < 8; i += 1) {
        logins.push(
          await post('198.51.100.7', '/api/users/login', { email: owner.email, password: owner.password }),
        );
      }
      expect(logins).toEqual(Array(8).fill(200));
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    expect(
      flood.every((s) => s === 201 || s === 503),
      flood.join(),
    ).toBe(true);
    expect(flood.filter((s) => s === 201).length).toBeGreaterThan(0);
  }, 120_000);
});
