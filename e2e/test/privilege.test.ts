/**
 * The admin role follows a verified email in ADMIN_EMAILS, and nothing else: taking an admin's address
 * by changing one's own email gives no role (finding V1), and a verified admin who moves to another
 * address loses the role in every session at once.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, startTestStack } from './helpers.ts';

const ADMIN = 'boss@example.com';
const CHIEF = 'chief@example.com';

describe('the admin role and email changes', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('privilege', { ADMIN_EMAILS: `${ADMIN},${CHIEF}` }));
    api = apiClient(stack.gatewayUrl);
  }, 90_000);
  afterAll(async () => {
    await dispose();
  });

  const register = async (name: string, email: string) => {
    const res = await api('POST', '/api/users', {
      body: { user: { username: name, email, password: 'long password' } },
    });
    expect(res.status).toBe(201);
    return res.body.user.token as string;
  };
  /** Asks for a code, reads it from the mail the notifier sent, and confirms it. */
  const verify = async (token: string, email: string) => {
    const count = () =>
      (stack.smtp?.to(email) ?? []).filter((m) => m.subject.includes('verification code')).length;
    const before = count();
    expect((await api('POST', '/api/user/verification', { token })).status).toBe(202);
    expect(await eventually(async () => count() > before, 15_000)).toBe(true);
    const mail = (stack.smtp?.to(email) ?? []).filter((m) => m.subject.includes('verification code')).at(-1);
    const code = /(\d{6})/.exec(mail?.subject ?? '')?.[1] ?? '';
    const confirmed = await api('POST', '/api/user/verification/confirm', {
      token,
      body: { verification: { code } },
    });
    expect(confirmed.status).toBe(200);
  };
  const rolesOf = async (token: string) =>
    (await api('GET', '/api/auth/session', { token })).body.session.roles as string[];

  it('a verified user who changes their email to an admin address is no admin', async () => {
    const token = await register('mallory', 'mallory@example.com');
    await verify(token, 'mallory@example.com');
    const moved = await api('PUT', '/api/user', { token, body: { user: { email: ADMIN } } });
    expect(moved.status).toBe(200);
    expect(await rolesOf(token)).toEqual(['user']);
    expect((await api('GET', '/api/admin/queues', { token })).status).toBe(403);
    // A new sign-in does not make it an admin either: the new address is not verified.
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: ADMIN, password: 'long password' } },
    });
    expect(await rolesOf(login.body.user.token)).toEqual(['user']);
  });

  it('an admin who moves to another address loses the role at once', async () => {
    const token = await register('chief', CHIEF);
    await verify(token, CHIEF);
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: CHIEF, password: 'long password' } },
    });
    const admin = login.body.user.token as string;
    expect(await rolesOf(admin)).toEqual(['user', 'admin']);
    expect((await api('GET', '/api/admin/queues', { token: admin })).status).toBe(200);
    const moved = await api('PUT', '/api/user', {
      token: admin,
      body: { user: { email: 'former.chief@example.com' } },
    });
    expect(moved.status).toBe(200);
    expect(await rolesOf(admin)).toEqual(['user']);
    expect((await api('GET', '/api/admin/queues', { token: admin })).status).toBe(403);
  });
});
