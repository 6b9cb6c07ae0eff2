/**
 * Auth through the gateway, against the RealWorld contract: register, login, current user, update; the
 * sessions behind the tokens; bad input that must change nothing; user events on the stream.
 */
import { decodeEvent } from '@atoll/events';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { hashToken } from '@atoll/session-store';
import type { Stack } from '@atoll/testkit';
import fc from 'fast-check';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, startTestStack, verifyEmail } from './helpers.ts';

describe('accounts and sessions through the gateway', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let db: pg.Client;
  let sessionRedis: RoleCheckedRedis;
  let queueRedis: RoleCheckedRedis;
  let prefix: string;
  let n = 0;
  const fresh = () => {
    n += 1;
    return {
      username: `user${n}x${Date.now() % 100000}`,
      email: `user${n}.${Date.now()}@example.com`,
      password: 'correct horse',
    };
  };
  const register = async (user = fresh()) => {
    const res = await api('POST', '/api/users', { body: { user } });
    expect(res.status).toBe(201);
    return { ...user, token: res.body.user.token as string };
  };
  const userCount = async () => Number((await db.query('select count(*) from auth.users')).rows[0].count);

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('accounts'));
    api = apiClient(stack.gatewayUrl);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    prefix = stack.envOf('auth').REDIS_KEY_PREFIX as string;
    sessionRedis = await redisOf(stack, 'session');
    queueRedis = await redisOf(stack, 'queue');
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await closeRedis(queueRedis);
    await db.end();
    await dispose();
  });

  describe('register, login, current user', () => {
    it('registers (201) with an opaque session token that works at once', async () => {
      const user = fresh();
      const res = await api('POST', '/api/users', { body: { user } });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        user: {
          email: user.email,
          token: expect.any(String),
          username: user.username,
          bio: null,
          image: null,
        },
      });
      const token = res.body.user.token as string;
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/); // not a JWT: no header, no claims, no dots
      const me = await api('GET', '/api/user', { token });
      expect(me.status).toBe(200);
      expect(me.body.user).toEqual({
        email: user.email,
        token,
        username: user.username,
        bio: null,
        image: null,
      });
      // API clients get no cookie: it would sit in their cookie jar and authenticate requests they send
      // without credentials.
      expect(res.headers.get('set-cookie')).toBeNull();
      // Browsers (Sec-Fetch-Site) get the same session as an HttpOnly cookie.
      const browser = await api('POST', '/api/users', {
        body: { user: fresh() },
        headers: { 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' },
      });
      const browserToken = browser.body.user.token as string;
      // Beside it, a device cookie (password-limits.test.ts): this browser signed in to this account.
      const [session, device, ...more] = browser.headers.getSetCookie();
      expect(session).toMatch(
        new RegExp(`^atoll_session=${browserToken}; Path=/; Max-Age=\\d+; HttpOnly; SameSite=Lax$`),
      );
      expect(device).toMatch(/^atoll_device=[\w-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
      expect(more).toEqual([]);
    });

    it('answers 422 "can\'t be blank" for missing or empty fields, and writes nothing', async () => {
      const before = await userCount();
      const cases: Array<[unknown, Record<string, string[]>]> = [
        [
          { user: {} },
          { username: ["can't be blank"], email: ["can't be blank"], password: ["can't be blank"] },
        ],
        [
          { user: { username: '', email: '', password: '' } },
          { username: ["can't be blank"], email: ["can't be blank"], password: ["can't be blank"] },
        ],
        [{ user: { ...fresh(), username: '   ' } }, { username: ["can't be blank"] }],
        [{}, { user: ["can't be blank"] }],
      ];
      for (const [body, errors] of cases) {
        const res = await api('POST', '/api/users', { body });
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.body).toEqual({ errors, code: 'VALIDATION_FAILED' });
      }
      expect(await userCount()).toBe(before);
    });

    it('answers 422 for wrong types, bad emails, short passwords and oversized fields', async () => {
      const before = await userCount();
      const user = fresh();
      const cases: Array<[unknown, Record<string, string[]>]> = [
        [{ user: { ...user, username: 123 } }, { username: ['must be a string'] }],
        [{ user: 'alice' }, { user: ['must be an object'] }],
        [{ user: { ...user, email: 'not-an-email' } }, { email: ['is invalid'] }],
        [{ user: { ...user, password: 'short' } }, { password: ['is too short (minimum is 8 characters)'] }],
        [
          { user: { ...user, username: 'x'.repeat(65) } },
          { username: ['is too long (maximum is 64 characters)'] },
        ],
        [{ user: { ...user, username: 'has/slash' } }, { username: ['is invalid'] }],
        // Names that look like another: invisible characters, mixed scripts; and path-like dots.
        [{ user: { ...user, username: 'ad\u200bmin' } }, { username: ['is invalid'] }],
        [{ user: { ...user, username: 'admin\u202e' } }, { username: ['is invalid'] }],
        [{ user: { ...user, username: 'p\u0430ypal' } }, { username: ['is invalid'] }],
        [{ user: { ...user, username: '..' } }, { username: ['is invalid'] }],
        [{ user: { ...user, username: 'a..b' } }, { username: ['is invalid'] }],
        [
          { user: { ...user, password: 'p'.repeat(257) } },
          { password: ['is too long (maximum is 256 characters)'] },
        ],
      ];
      for (const [body, errors] of cases) {
        const res = await api('POST', '/api/users', { body });
        expect(res.status, JSON.stringify(body)).toBe(422);
        expect(res.body).toEqual({ errors, code: 'VALIDATION_FAILED' });
      }
      const malformed = await api('POST', '/api/users', { raw: '{"user": {' });
      expect(malformed.status).toBe(400);
      expect(malformed.body).toEqual({ errors: { body: ['is not valid JSON'] }, code: 'MALFORMED_BODY' });
      const huge = await api('POST', '/api/users', {
        raw: JSON.stringify({ user: { ...user, bio: 'b'.repeat(300_000) } }),
      });
      expect(huge.status).toBe(413);
      expect(huge.body).toMatchObject({ errors: { body: ['is too large'] } });
      expect(await userCount()).toBe(before);
    });

    it('answers 409 "has already been taken" for a username or email in use, whatever the case', async () => {
      const taken = await register();
      const sameName = await api('POST', '/api/users', {
        body: { user: { ...fresh(), username: taken.username.toUpperCase() } },
      });
      expect(sameName.status).toBe(409);
      expect(sameName.body.errors).toEqual({ username: ['has already been taken'] });
      const sameEmail = await api('POST', '/api/users', {
        body: { user: { ...fresh(), email: taken.email.toUpperCase() } },
      });
      expect(sameEmail.status).toBe(409);
      expect(sameEmail.body.errors).toEqual({ email: ['has already been taken'] });
    });

    it('finds each account by its own name and email, whatever the case of their letters (fast-check)', async () => {
      // An account and its twin spelled in the other case: PostgreSQL may fold the twin into the same
      // account (409) or keep two (the C locale folds only A–Z). Either way, every account's own name
      // reaches its own profile and its own email signs in to it, never to its twin's.
      const latin = ['a', 'A', 'é', 'É', 'ä', 'Ä', 'ö', 'Ö', 'ß', 'ẞ', 'i', 'İ', 'k', 'K'];
      const greek = ['α', 'Α', 'σ', 'Σ', 'ς', 'ω', 'Ω'];
      const letters = (set: string[]) => fc.array(fc.constantFrom(...set), { minLength: 2, maxLength: 6 });
      const twinOf = (text: string) =>
        text.toLowerCase() !== text ? text.toLowerCase() : text.toUpperCase();
      let created = 0;
      let run = 0;
      await fc.assert(
        fc.asyncProperty(fc.oneof(letters(latin), letters(greek)), letters(latin), async (name, local) => {
          run += 1;
          const tag = `${run}0${Date.now() % 100000}`;
          const first = {
            username: `${name.join('')}${tag}`,
            email: `${local.join('')}${tag}@example.com`,
            password: 'correct horse',
          };
          const twin = { ...first, username: twinOf(first.username), email: twinOf(first.email) };
          const accounts = [];
          for (const user of [first, twin]) {
            const res = await api('POST', '/api/users', { body: { user } });
            if (res.status === 201) accounts.push(user);
            else expect(res.status, JSON.stringify(res.body)).toBe(409);
          }
          expect(accounts[0]).toBe(first);
          created += accounts.length;
          for (const user of accounts) {
            const profile = await api('GET', `/api/profiles/${encodeURIComponent(user.username)}`);
            expect(profile.status, user.username).toBe(200);
            expect(profile.body.profile.username).toBe(user.username.normalize('NFC'));
            const login = await api('POST', '/api/users/login', {
              body: { user: { email: user.email, password: user.password } },
            });
            expect(login.status, user.email).toBe(200);
            expect(login.body.user.username).toBe(user.username.normalize('NFC'));
          }
        }),
        { numRuns: 25, seed: 20261207 },
      );
      expect(created).toBeGreaterThanOrEqual(25);
    }, 120_000);

    it('logs in with the right password only; a wrong one and an unknown account look the same', async () => {
      const ada = await register();
      const ok = await api('POST', '/api/users/login', {
        body: { user: { email: ada.email, password: ada.password } },
      });
      expect(ok.status).toBe(200);
      expect(ok.body.user.token).not.toBe(ada.token); // a new session per login
      const wrong = await api('POST', '/api/users/login', {
        body: { user: { email: ada.email, password: 'wrong password' } },
      });
      const unknown = await api('POST', '/api/users/login', {
        body: { user: { email: 'nobody@example.com', password: 'x' } },
      });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toEqual({ errors: { credentials: ['invalid'] }, code: 'AUTH_INVALID_CREDENTIALS' });
      expect(unknown.status).toBe(401);
      expect(unknown.body).toEqual(wrong.body);
      const blank = await api('POST', '/api/users/login', { body: { user: { email: '', password: '' } } });
      expect(blank.status).toBe(422);
    });

    it('answers 401 "is missing" without a token, and for an unknown one', async () => {
      expect(await api('GET', '/api/user')).toMatchObject({
        status: 401,
        body: { errors: { token: ['is missing'] } },
      });
      expect((await api('GET', '/api/user', { token: 'A'.repeat(43) })).status).toBe(401);
      expect((await api('PUT', '/api/user', { body: { user: { bio: 'x' } } })).status).toBe(401);
    });
  });

  describe('update', () => {
    it('takes only an http or https URL as the image, and a refused one changes nothing', async () => {
      const ada = await register();
      const set = (image: string) => api('PUT', '/api/user', { token: ada.token, body: { user: { image } } });
      expect((await set('https://example.com/me.png')).status).toBe(200);
      for (const image of [
        'javascript:alert(1)',
        ' JavaScript:alert(1)',
        'data:image/svg+xml,<svg onload=alert(1)>',
        'ftp://example.com/me.png',
        '/relative/me.png',
        'me.png',
        'https://user:secret@example.com/me.png',
      ]) {
        const res = await set(image);
        expect(res.status, image).toBe(422);
        expect(res.body.errors).toEqual({ image: ['must be an http or https URL'] });
      }
      const me = await api('GET', '/api/user', { token: ada.token });
      expect(me.body.user.image).toBe('https://example.com/me.png');
      // Stored as the URL parser writes it.
      const odd = await set(' HTTPS://Bücher.example/a b"c.png ');
      expect(odd.status).toBe(200);
      expect(odd.body.user.image).toBe('https://xn--bcher-kva.example/a%20b%22c.png');
    });

    it('turns "" into null for bio and image, accepts null, and keeps the token', async () => {
      const ada = await register();
      const set = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { bio: 'I like maths', image: 'https://img/a.png' } },
      });
      expect(set.body.user).toMatchObject({
        bio: 'I like maths',
        image: 'https://img/a.png',
        token: ada.token,
      });
      const cleared = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { bio: '', image: null } },
      });
      expect(cleared.status).toBe(200);
      expect(cleared.body.user).toMatchObject({ bio: null, image: null, token: ada.token });
      const wrongType = await api('PUT', '/api/user', { token: ada.token, body: { user: { bio: 5 } } });
      expect(wrongType.status).toBe(422);
    });

    it('a new username or email keeps the session that made it; a new email ends the others', async () => {
      const ada = await register();
      const other = (
        await api('POST', '/api/users/login', {
          body: { user: { email: ada.email, password: ada.password } },
        })
      ).body.user.token as string;
      const renamed = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { username: `${ada.username}r` } },
      });
      expect(renamed.status).toBe(200);
      expect(renamed.body.user.token).toBe(ada.token);
      expect((await api('GET', '/api/user', { token: ada.token })).body.user.username).toBe(
        `${ada.username}r`,
      );
      // Every live session carries the new name at once.
      expect((await api('GET', '/api/user', { token: other })).body.user.username).toBe(`${ada.username}r`);

      const moved = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { email: `new.${ada.email}` } },
      });
      expect(moved.body.user).toMatchObject({ email: `new.${ada.email}`, token: ada.token });
      expect((await api('GET', '/api/user', { token: ada.token })).status).toBe(200);
      expect((await api('GET', '/api/user', { token: other })).status).toBe(401);
    });

    it('keeps an address verified through a change of A–Z case only; any other change must be verified again', async () => {
      const n = Date.now() % 100000;
      const email = `ab${n}σας@example.com`;
      const user = { username: `sigma${n}`, email, password: 'correct horse' };
      const token = (await api('POST', '/api/users', { body: { user } })).body.user.token as string;
      await verifyEmail(api, stack, token, email);
      let currentEmail = email;
      const verified = async () =>
        (await db.query('select email_verified_at from auth.users where email = $1', [currentEmail])).rows[0]
          ?.email_verified_at !== null;
      expect(await verified()).toBe(true);
      currentEmail = `AB${n}σας@example.com`;
      expect((await api('PUT', '/api/user', { token, body: { user: { email: currentEmail } } })).status).toBe(
        200,
      );
      expect(await verified()).toBe(true);
      // Σ is not σ to the database (C locale): another address, for all auth knows.
      currentEmail = `AB${n}ΣΑΣ@example.com`;
      expect((await api('PUT', '/api/user', { token, body: { user: { email: currentEmail } } })).status).toBe(
        200,
      );
      expect(await verified()).toBe(false);
    });

    it('a new password needs 8 characters, keeps this session, ends every other one, and is the one that logs in', async () => {
      const ada = await register();
      const other = (
        await api('POST', '/api/users/login', {
          body: { user: { email: ada.email, password: ada.password } },
        })
      ).body.user.token as string;
      const short = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { password: 'short' } },
      });
      expect(short.status).toBe(422);
      expect(short.body.errors).toEqual({ password: ['is too short (minimum is 8 characters)'] });

      const changed = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { password: 'new password!' } },
      });
      expect(changed.status).toBe(200);
      // The client that changed it goes on with the token it holds, which is also the one returned.
      const token = changed.body.user.token as string;
      expect(token).toBe(ada.token);
      expect((await api('GET', '/api/user', { token })).status).toBe(200);
      expect((await api('GET', '/api/user', { token: other })).status).toBe(401);
      const sessions = await api('GET', '/api/user/sessions', { token });
      expect(sessions.body.sessions).toHaveLength(1);
      const oldLogin = await api('POST', '/api/users/login', {
        body: { user: { email: ada.email, password: ada.password } },
      });
      expect(oldLogin.status).toBe(401);
      const newLogin = await api('POST', '/api/users/login', {
        body: { user: { email: ada.email, password: 'new password!' } },
      });
      expect(newLogin.status).toBe(200);
    });

    it('answers 409 when the new username or email belongs to someone else', async () => {
      const ada = await register();
      const bob = await register();
      const res = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { username: bob.username, email: bob.email } },
      });
      expect(res.status).toBe(409);
      expect(res.body.errors).toEqual({
        username: ['has already been taken'],
        email: ['has already been taken'],
      });
      expect((await api('GET', '/api/user', { token: ada.token })).body.user.username).toBe(ada.username);
    });
  });

  describe('sessions', () => {
    it('stores a hash of the token, never the token, with a TTL', async () => {
      const ada = await register();
      const keys = createKeys(prefix);
      const key = keys.session(hashToken(ada.token).id);
      expect(await sessionRedis.exists(key)).toBe(1);
      expect(await sessionRedis.pttl(key)).toBeGreaterThan(0);
      const everything = JSON.stringify(
        await Promise.all(
          (await sessionRedis.keys(`${prefix}:*`)).map(async (k) => [k, await sessionRedis.dump(k)]),
        ),
      );
      expect(everything).not.toContain(ada.token);
    });

    it('lists sessions, revokes one (401 at once), logs out, and logs out everywhere', async () => {
      const ada = await register();
      const login = async () =>
        (
          await api('POST', '/api/users/login', {
            body: { user: { email: ada.email, password: ada.password } },
          })
        ).body.user.token as string;
      const [second, third] = [await login(), await login()];
      const list = await api('GET', '/api/user/sessions', {
        token: ada.token,
        headers: { 'user-agent': 'test-agent' },
      });
      expect(list.status).toBe(200);
      expect(list.body.sessions).toHaveLength(3);
      expect(list.body.sessions.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
      const secondId = hashToken(second).id;
      expect(list.body.sessions.map((s: { id: string }) => s.id)).toContain(secondId);

      expect((await api('DELETE', `/api/user/sessions/${secondId}`, { token: ada.token })).status).toBe(204);
      expect((await api('GET', '/api/user', { token: second })).status).toBe(401);
      expect((await api('DELETE', `/api/user/sessions/${secondId}`, { token: ada.token })).status).toBe(404);
      // Someone else's session cannot be revoked.
      const bob = await register();
      expect(
        (await api('DELETE', `/api/user/sessions/${hashToken(bob.token).id}`, { token: ada.token })).status,
      ).toBe(404);
      expect((await api('GET', '/api/user', { token: bob.token })).status).toBe(200);

      expect((await api('DELETE', '/api/user/session', { token: third })).status).toBe(204);
      expect((await api('GET', '/api/user', { token: third })).status).toBe(401);
      expect((await api('GET', '/api/user', { token: ada.token })).status).toBe(200);

      const fourth = await login();
      expect((await api('DELETE', '/api/user/sessions', { token: ada.token })).status).toBe(204);
      expect((await api('GET', '/api/user', { token: ada.token })).status).toBe(401);
      expect((await api('GET', '/api/user', { token: fourth })).status).toBe(401);
    });

    it('never lets the session a browser had before logging in survive the login (fixation)', async () => {
      const ada = await register();
      const before = await register();
      const res = await api('POST', '/api/users/login', {
        body: { user: { email: ada.email, password: ada.password } },
        headers: {
          cookie: `atoll_session=${before.token}`,
          origin: stack.gatewayUrl,
          'sec-fetch-site': 'same-origin',
        },
      });
      expect(res.status).toBe(200);
      const after = res.headers.get('set-cookie') ?? '';
      expect(after).toContain(`atoll_session=${res.body.user.token}`);
      expect(res.body.user.token).not.toBe(before.token);
      expect((await api('GET', '/api/user', { token: before.token })).status).toBe(401);
    });

    it('refuses cookie-authenticated writes from another origin; clients that are not browsers and token calls are unaffected', async () => {
      const ada = await register();
      const cookie = `atoll_session=${ada.token}`;
      const evil = await api('PUT', '/api/user', {
        body: { user: { bio: 'pwned' } },
        headers: { cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
      });
      expect(evil.status).toBe(403);
      expect(evil.body).toEqual({
        errors: { origin: ['is not allowed to use the session cookie'] },
        code: 'CSRF_ORIGIN_REJECTED',
      });
      expect((await api('GET', '/api/user', { token: ada.token })).body.user.bio).toBeNull();
      // An API client with a cookie jar sends neither Origin nor Sec-Fetch-Site: not a browser.
      const jar = await api('PUT', '/api/user', { body: { user: { bio: 'jar' } }, headers: { cookie } });
      expect(jar.status).toBe(200);
      const sameOrigin = await api('PUT', '/api/user', {
        body: { user: { bio: 'mine' } },
        headers: { cookie, origin: stack.gatewayUrl, 'sec-fetch-site': 'same-origin' },
      });
      expect(sameOrigin.status).toBe(200);
      const read = await api('GET', '/api/user', { headers: { cookie } });
      expect(read.body.user.bio).toBe('mine');
      const viaToken = await api('PUT', '/api/user', {
        token: ada.token,
        body: { user: { bio: 'api' } },
        headers: { cookie, origin: 'https://elsewhere.example', 'sec-fetch-site': 'cross-site' },
      });
      expect(viaToken.status).toBe(200);
    });

    it('never puts the token of a cookie-only request in a body (an XSS could read it there); a token client gets its own back', async () => {
      const ada = await register();
      const cookie = `atoll_session=${ada.token}`;
      const browser = { cookie, origin: stack.gatewayUrl, 'sec-fetch-site': 'same-origin' };
      const read = await api('GET', '/api/user', { headers: browser });
      expect(read.status).toBe(200);
      expect(read.body.user).toMatchObject({ email: ada.email, token: '' });
      const write = await api('PUT', '/api/user', { body: { user: { bio: 'cookie' } }, headers: browser });
      expect(write.status).toBe(200);
      expect(write.body.user).toMatchObject({ bio: 'cookie', token: '' });
      expect(JSON.stringify([read.body, write.body])).not.toContain(ada.token);
      // Authorization: the caller's own token, as RealWorld clients expect (the cookie beside it is ignored).
      const viaToken = await api('GET', '/api/user', {
        token: ada.token,
        headers: { cookie: 'atoll_session=x' },
      });
      expect(viaToken.body.user.token).toBe(ada.token);
      const updated = await api('PUT', '/api/user', { token: ada.token, body: { user: { bio: 'token' } } });
      expect(updated.body.user).toMatchObject({ bio: 'token', token: ada.token });
    });

    it('resolves a session and counts its rate limit in one Redis command, no write until the idle refresh is due', async () => {
      const ada = await register();
      await api('GET', '/api/user', { token: ada.token }); // warm: connections, scripts
      const calls = async () => {
        const info = await sessionRedis.info('commandstats');
        const total: Record<string, number> = {};
        for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) total[m[1] as string] = Number(m[2]);
        return total;
      };
      const before = await calls();
      const res = await api('GET', '/api/user', { token: ada.token });
      expect(res.status).toBe(200);
      const after = await calls();
      const delta = Object.fromEntries(
        Object.entries(after)
          .map(([cmd, c]) => [cmd, c - (before[cmd] ?? 0)])
          .filter(([cmd, d]) => (d as number) > 0 && cmd !== 'info'),
      );
      // One script (the gateway's session read + the user's and the address's rate-limit counts); the
      // calls inside it are counted too.
      expect(delta).toEqual({ evalsha: 1, hgetall: 1, incr: 2, pttl: 2 });
    });
  });

  describe('user events', () => {
    it('publishes user.registered and user.updated on the stream, with valid payloads', async () => {
      const ada = await register();
      await api('PUT', '/api/user', { token: ada.token, body: { user: { bio: 'hello' } } });
      const stream = createKeys(prefix).userEvents();
      const found = await eventually(async () => {
        const entries = (await queueRedis.xrange(stream, '-', '+')) as Array<[string, string[]]>;
        const events = entries.map(([, fields]) => decodeEvent(fields));
        const mine = events.filter(
          (e) => e.ok && (e.payload as { username: string }).username === ada.username,
        );
        return mine.length === 2;
      });
      expect(found).toBe(true);
      const entries = (await queueRedis.xrange(stream, '-', '+')) as Array<[string, string[]]>;
      const mine = entries
        .map(([, f]) => decodeEvent(f))
        .filter((e) => e.ok && (e.payload as { username: string }).username === ada.username);
      expect(mine.map((e) => e.ok && e.type)).toEqual(['user.registered', 'user.updated']);
      expect(mine[1]).toMatchObject({
        ok: true,
        version: 2,
        payload: { bio: 'hello', image: null, email: ada.email, emailVerified: false },
      });
      const pending = await db.query('select count(*) from auth.outbox where published_at is null');
      expect(Number(pending.rows[0].count)).toBe(0);
    });
  });
});
