/**
 * Account security through the gateway: re-authentication before an email or password change (the
 * current password, or a sign-in within REAUTH_WINDOW_S), the mail to the old address when the email
 * changes, the cap on live sessions per user, admin termination and disabling of accounts, and roles
 * recomputed when auth restarts with another ADMIN_EMAILS.
 */
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { googleSignIn as signInWithGoogle } from './google-flow.ts';
import { eventually, redisOf, startTestStack } from './helpers.ts';

const REAUTH_WINDOW_S = 2;
const PASSWORD = 'correct horse';

describe('account security', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let sessionRedis: RoleCheckedRedis;
  let keys: ReturnType<typeof createKeys>;
  let restartedAuth: ServiceProcess | null = null;
  let n = 0;
  const register = async (email?: string) => {
    n += 1;
    const user = { username: `sec${n}`, email: email ?? `sec${n}@example.com`, password: PASSWORD };
    const res = await api('POST', '/api/users', { body: { user } });
    expect(res.status).toBe(201);
    return { ...user, token: res.body.user.token as string };
  };
  const login = (email: string, password = PASSWORD) =>
    api('POST', '/api/users/login', { body: { user: { email, password } } });
  const update = (token: string, user: Record<string, unknown>) =>
    api('PUT', '/api/user', { token, body: { user } });
  const sessionOf = async (token: string) => (await api('GET', '/api/auth/session', { token })).body.session;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const pastWindow = () => sleep(REAUTH_WINDOW_S * 1000 + 300);

  const googleSignIn = (claims: { sub: string; email: string; name: string }) =>
    signInWithGoogle(stack, claims);

  /** An admin: ADMIN_EMAILS names the address, the mailed code verifies it, its sessions have the role. */
  const makeAdmin = async () => {
    const root = await register('root@example.com');
    expect((await api('POST', '/api/user/verification', { token: root.token })).status).toBe(202);
    const codeMail = () =>
      (stack.smtp?.to(root.email) ?? []).find((m) => m.subject.startsWith('Your atoll verification code: '));
    expect(await eventually(async () => codeMail() !== undefined, 15_000)).toBe(true);
    const code = codeMail()?.subject.slice(-6);
    const confirmed = await api('POST', '/api/user/verification/confirm', {
      token: root.token,
      body: { verification: { code } },
    });
    expect(confirmed.status).toBe(200);
    // The role reaches the session that confirmed at once, and every later sign-in.
    expect((await sessionOf(root.token)).roles).toContain('admin');
    const signedIn = await login(root.email);
    expect(signedIn.status).toBe(200);
    const token = signedIn.body.user.token as string;
    expect((await sessionOf(token)).roles).toContain('admin');
    return { ...root, token };
  };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('account-security', {
      PASSWORD_DENY_COMMON: 'true',
      ADMIN_EMAILS: 'root@example.com',
      REAUTH_WINDOW_S: String(REAUTH_WINDOW_S),
      SESSION_MAX_PER_USER: '3',
    }));
    api = apiClient(stack.gatewayUrl);
    keys = createKeys(stack.envOf('auth').REDIS_KEY_PREFIX as string);
    sessionRedis = await redisOf(stack, 'session');
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await restartedAuth?.stop();
    await dispose();
  });

  describe('re-authentication before an email or password change', () => {
    it('lets a fresh sign-in change both without the current password (RealWorld clients)', async () => {
      const ada = await register();
      const changed = await update(ada.token, { email: `ada.${ada.email}`, password: 'another secret' });
      expect(changed.status).toBe(200);
      expect(changed.body.user.token).toBe(ada.token);
      const again = await login(`ada.${ada.email}`, 'another secret');
      expect(again.status).toBe(200);
      const fromLogin = await update(again.body.user.token, { password: 'a third secret' });
      expect(fromLogin.status).toBe(200);
    });

    it('after the window: 401 AUTH_REAUTHENTICATION_REQUIRED without it, 422 for a wrong one, 200 with it', async () => {
      const bob = await register();
      const cid = await register();
      await pastWindow();
      for (const change of [{ password: 'new secret 1' }, { email: `moved.${bob.email}` }]) {
        const refused = await update(bob.token, change);
        expect(refused.status).toBe(401);
        expect(refused.body).toEqual({
          errors: { currentPassword: ['is required to change the email or password (or sign in again)'] },
          code: 'AUTH_REAUTHENTICATION_REQUIRED',
        });
      }
      // The session is still good for everything else, and nothing changed.
      expect((await update(bob.token, { bio: 'still here' })).status).toBe(200);
      expect((await login(bob.email)).status).toBe(200);

      const wrong = await update(bob.token, { password: 'new secret 1', currentPassword: 'not it at all' });
      expect(wrong.status).toBe(422);
      expect(wrong.body.errors).toEqual({ currentPassword: ['is invalid'] });
      const right = await update(bob.token, { password: 'new secret 1', currentPassword: PASSWORD });
      expect(right.status).toBe(200);
      expect((await login(bob.email, 'new secret 1')).status).toBe(200);

      // A wrong current password is a failed attempt: after five, even the right one waits (429).
      for (let i = 0; i < 5; i += 1) {
        expect(
          (await update(cid.token, { password: 'new secret 2', currentPassword: `wrong ${i}` })).status,
        ).toBe(422);
      }
      const locked = await update(cid.token, { password: 'new secret 2', currentPassword: PASSWORD });
      expect(locked.status).toBe(429);
      expect(locked.body.code).toBe('AUTH_TOO_MANY_ATTEMPTS');
    });

    it('an account without a password (Google only) may set one within the window only', async () => {
      const early = await googleSignIn({ sub: 'g-early', email: 'early@example.com', name: 'Early' });
      expect(early.res.status).toBe(302);
      expect((await update(early.token ?? '', { password: 'first password' })).status).toBe(200);
      expect((await login('early@example.com', 'first password')).status).toBe(200);

      const late = await googleSignIn({ sub: 'g-late', email: 'late@example.com', name: 'Late' });
      expect(late.res.status).toBe(302);
      await pastWindow();
      expect((await update(late.token ?? '', { password: 'first password' })).status).toBe(401);
      const guessed = await update(late.token ?? '', { password: 'first password', currentPassword: 'x' });
      expect(guessed.status).toBe(422);
    });
  });

  it('mails the old address when the email changes, with the new one masked', async () => {
    const dee = await register();
    const moved = await update(dee.token, { email: `newhome.${n}@example.org` });
    expect(moved.status).toBe(200);
    const changedMail = () =>
      (stack.smtp?.to(dee.email) ?? []).find((m) => m.subject === 'Your atoll email address was changed');
    expect(await eventually(async () => changedMail() !== undefined, 15_000)).toBe(true);
    const mail = changedMail();
    expect(mail?.text).toContain('changed to n***@example.org');
    expect(mail?.html).toContain('changed to n***@example.org');
    expect(mail?.text).not.toContain(`newhome.${n}@`);
    // Only the old address hears of it.
    expect(
      (stack.smtp?.to(`newhome.${n}@example.org`) ?? []).filter((m) => m.subject.includes('changed')),
    ).toEqual([]);
  });

  it('keeps at most SESSION_MAX_PER_USER live sessions: one more ends the oldest', async () => {
    const eve = await register(); // session 1
    const tokens = [eve.token];
    for (let i = 0; i < 3; i += 1) tokens.push((await login(eve.email)).body.user.token as string);
    expect((await api('GET', '/api/user', { token: tokens[0] })).status).toBe(401);
    for (const token of tokens.slice(1)) expect((await api('GET', '/api/user', { token })).status).toBe(200);
    const listed = await api('GET', '/api/user/sessions', { token: tokens[3] });
    expect(listed.body.sessions).toHaveLength(3);
  });

  it('leaves no session from a sign-in that raced a change of credentials, in any order (ASVS 7.4.3)', async () => {
    // The owner changes the password or the email, or uses a reset link; someone who knows the old
    // password signs in at a random moment around it. Whichever finishes first, once both have answered
    // the old password opens nothing: the sign-in was refused, or its session is over.
    type Change = 'password' | 'email' | 'reset';
    const outcomes = { refused: 0, ended: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<Change>('password', 'email', 'reset'),
        // Negative: the sign-in starts first, by that much.
        fc.integer({ min: -60, max: 200 }),
        async (change, delayMs) => {
          const owner = await register();
          let link = '';
          if (change === 'reset') {
            const asked = await api('POST', '/api/users/password-reset', {
              body: { user: { email: owner.email } },
            });
            expect(asked.status).toBe(202);
            const mail = () =>
              (stack.smtp?.to(owner.email) ?? []).find((m) => m.subject === 'Reset your atoll password');
            expect(await eventually(async () => mail() !== undefined, 15_000)).toBe(true);
            link = decodeURIComponent(/reset-password\?token=([^\s"&]+)/.exec(mail()?.text ?? '')?.[1] ?? '');
          }
          const early = delayMs < 0 ? login(owner.email) : null;
          if (early) await sleep(-delayMs);
          const changing =
            change === 'reset'
              ? api('POST', '/api/users/password-reset/confirm', {
                  body: { reset: { token: link, password: 'a brand new secret' } },
                })
              : update(
                  owner.token,
                  // With the current password: no reliance on the re-authentication window.
                  change === 'password'
                    ? { password: 'a brand new secret', currentPassword: PASSWORD }
                    : { email: `moved.${owner.email}`, currentPassword: PASSWORD },
                );
          if (!early) await sleep(delayMs);
          const signIn = await (early ?? login(owner.email));
          const changed = await changing;
          expect(changed.status).toBe(change === 'reset' ? 204 : 200);
          if (signIn.status === 200) {
            outcomes.ended += 1;
            const after = await api('GET', '/api/user', { token: signIn.body.user.token });
            expect(after.status, `${change} after ${delayMs} ms: the raced session lives on`).toBe(401);
          } else {
            outcomes.refused += 1;
            expect(signIn.status).toBe(401);
          }
          // A change keeps the session that made it; a reset ends them all.
          const own = await api('GET', '/api/user', { token: owner.token });
          expect(own.status).toBe(change === 'reset' ? 401 : 200);
        },
      ),
      { numRuns: 30, seed: 20261207 },
    );
    // The delays reached both sides of the change: sign-ins that got in first and ones refused.
    expect(outcomes.ended).toBeGreaterThan(0);
    expect(outcomes.refused).toBeGreaterThan(0);
  }, 120_000);

  it('lets one of two racing credential changes win, never both, and the winner holds (fast-check)', async () => {
    // The owner sets a new password; someone who knew the old one, signed in a moment ago, changes the
    // password or the email at a random moment around it. Each change ends the other's session, so at
    // most one may answer 200, and the account is then as that one left it.
    const wins = { owner: 0, other: 0 };
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('password', 'email'),
        fc.integer({ min: 0, max: 150 }),
        async (kind, delayMs) => {
          const owner = await register();
          const other = (await login(owner.email)).body.user.token as string;
          // Both prove the current password (no reliance on the re-authentication window on a busy machine).
          const ownerChange = update(owner.token, {
            password: 'the owner moved on',
            currentPassword: PASSWORD,
          });
          await sleep(delayMs);
          const otherChange = await update(
            other,
            kind === 'password'
              ? { password: 'someone else was here', currentPassword: PASSWORD }
              : { email: `taken.${owner.email}`, currentPassword: PASSWORD },
          );
          const ownerAnswer = await ownerChange;
          const ok = [ownerAnswer.status, otherChange.status].filter((s) => s === 200).length;
          expect(ok, `${kind} after ${delayMs} ms: ${ownerAnswer.status} and ${otherChange.status}`).toBe(1);
          if (ownerAnswer.status === 200) {
            wins.owner += 1;
            // Refused: its session ended (401), the account changed under it (409), or it read the new
            // password and its old one no longer proves anything (422).
            expect([401, 409, 422]).toContain(otherChange.status);
            expect((await login(owner.email, 'the owner moved on')).status).toBe(200);
            expect((await api('GET', '/api/user', { token: other })).status).toBe(401);
          } else {
            wins.other += 1;
            expect([401, 409, 422]).toContain(ownerAnswer.status);
            expect((await api('GET', '/api/user', { token: owner.token })).status).toBe(401);
          }
        },
      ),
      { numRuns: 24, seed: 20261207 },
    );
    expect(wins.owner).toBeGreaterThan(0);
  }, 120_000);

  it('counts a password change only once nothing else refused it', async () => {
    const taken = await register();
    const gil = await register();
    // Five refused changes (the username is someone else's) cost nothing of the hourly allowance.
    for (let i = 0; i < 6; i += 1) {
      const refused = await update(gil.token, { username: taken.username, password: `new secret ${i}` });
      expect(refused.status).toBe(409);
    }
    expect((await update(gil.token, { password: 'a new secret at last' })).status).toBe(200);
  });

  describe('admin', () => {
    let root: Awaited<ReturnType<typeof makeAdmin>>;
    beforeAll(async () => {
      root = await makeAdmin();
    }, 30_000);

    it('is for admins only (403) and names unknown accounts (404)', async () => {
      const fay = await register();
      const forbidden = await api('DELETE', `/api/admin/users/${fay.username}/sessions`, {
        token: fay.token,
      });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.code).toBe('FORBIDDEN');
      expect(
        (await api('POST', `/api/admin/users/${root.username}/disable`, { token: fay.token })).status,
      ).toBe(403);
      expect(
        (await api('DELETE', '/api/admin/users/nobody-here/sessions', { token: root.token })).status,
      ).toBe(404);
      const self = await api('POST', `/api/admin/users/${root.username}/disable`, { token: root.token });
      expect(self.status).toBe(422);
    });

    it('ends every session of an account', async () => {
      const gus = await register();
      const second = (await login(gus.email)).body.user.token as string;
      const ended = await api('DELETE', `/api/admin/users/${gus.username}/sessions`, { token: root.token });
      expect(ended.status).toBe(200);
      expect(ended.body).toEqual({ sessions: { ended: 2 } });
      for (const token of [gus.token, second]) {
        expect((await api('GET', '/api/user', { token })).status).toBe(401);
      }
      expect((await login(gus.email)).status).toBe(200); // not disabled: they may sign in again
    });

    it('disables an account (sessions end, sign-in refused like a wrong password) and enables it again', async () => {
      const hal = await register();
      const disabled = await api('POST', `/api/admin/users/${hal.username}/disable`, { token: root.token });
      expect(disabled.status).toBe(200);
      expect(disabled.body.user.username).toBe(hal.username);
      expect(Date.parse(disabled.body.user.disabledAt)).toBeGreaterThan(0);
      expect((await api('GET', '/api/user', { token: hal.token })).status).toBe(401);
      const refused = await login(hal.email);
      expect(refused.status).toBe(401);
      expect(refused.body.code).toBe('AUTH_INVALID_CREDENTIALS');
      expect(refused.body).toEqual((await login(hal.email, 'wrong password')).body);

      const enabled = await api('POST', `/api/admin/users/${hal.username}/enable`, { token: root.token });
      expect(enabled.status).toBe(200);
      expect(enabled.body.user.disabledAt).toBeNull();
      expect((await login(hal.email)).status).toBe(200);
    });

    it('refuses Google sign-in to a disabled account too', async () => {
      const google = { sub: 'g-ivy', email: 'ivy@example.com', name: 'Ivy' };
      const first = await googleSignIn(google);
      expect(first.res.status).toBe(302);
      const username = (await api('GET', '/api/user', { token: first.token })).body.user.username as string;
      expect((await api('POST', `/api/admin/users/${username}/disable`, { token: root.token })).status).toBe(
        200,
      );
      expect((await api('GET', '/api/user', { token: first.token })).status).toBe(401);
      const refused = await googleSignIn(google);
      expect(refused.res.status).toBe(401);
      expect(((await refused.res.json()) as { code: string }).code).toBe('AUTH_INVALID_CREDENTIALS');
      expect(refused.token).toBeUndefined();
    });

    // Last: it restarts auth without the admin address.
    it('takes a stale admin role out of live sessions when auth restarts without the address', async () => {
      const userId = (await sessionOf(root.token)).userId as string;
      expect(await sessionRedis.smembers(keys.roleHolders('admin'))).toContain(userId);
      const env = { ...stack.envOf('auth'), ADMIN_EMAILS: '' };
      await stack.services.auth.stop();
      restartedAuth = await ServiceProcess.start('auth', env);
      expect((await sessionOf(root.token)).roles).toEqual(['user']);
      const now = await api('DELETE', `/api/admin/users/${root.username}/sessions`, { token: root.token });
      expect(now.status).toBe(403);
      expect(await sessionRedis.smembers(keys.roleHolders('admin'))).not.toContain(userId);
    });
  });

  it('refuses common passwords and ones built on the account or the site, at sign-up and change (ASVS 6.2.4, 6.2.11)', async () => {
    const refused = async (user: Record<string, string>, message: string) => {
      const res = await api('POST', '/api/users', { body: { user } });
      expect(res.status, JSON.stringify(user)).toBe(422);
      expect(res.body).toEqual({ errors: { password: [message] }, code: 'VALIDATION_FAILED' });
    };
    const name = `pol${Date.now() % 100000}`;
    const email = `${name}@example.com`;
    await refused(
      { username: name, email, password: 'password123' },
      'is too common, choose a less guessable one',
    );
    const own = 'must not contain your username, your email or the name of this site';
    await refused({ username: name, email, password: `${name} is me` }, own);
    await refused({ username: name, email, password: 'conduit for ever' }, own);
    const ok = await api('POST', '/api/users', {
      body: { user: { username: name, email, password: PASSWORD } },
    });
    expect(ok.status).toBe(201);
    const change = await api('PUT', '/api/user', {
      token: ok.body.user.token,
      body: { user: { password: 'iloveyou1' } },
    });
    expect(change.status).toBe(422);
    expect(change.body.errors).toEqual({ password: ['is too common, choose a less guessable one'] });
  });
});
