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

    // The same password again: no new hash, so nothing changed and the other session lives on.
    expect((await change(ada.password)).status).toBe(200);
    expect((await api('GET', '/api/user', { token: other.body.user.token })).status).toBe(200);

    // A new one: the other session ends.
    const changed = await change('a much better horse');
    expect(changed.status).toBe(200);
    ada.password = 'a much better horse';
    expect((await api('GET', '/api/user', { token: other.body.user.token })).status).toBe(401);

    // Two changes in the window were allowed; the third is refused before any hashing.
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
});
