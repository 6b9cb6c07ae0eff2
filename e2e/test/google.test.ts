/**
 * Google sign-in against a real OpenID provider on loopback (oauth2-mock-server, standing in for Google),
 * driven like a browser: follow the redirects by hand, keep the cookies. The happy path, then every way
 * the flow must refuse, each with a clear error and no session.
 */
import { createHash } from 'node:crypto';
import { decodeEvent } from '@atoll/events';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit';
import { Events } from 'oauth2-mock-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, startTestStack } from './helpers.ts';

interface Started {
  authorizeUrl: string;
  binding: string;
  state: string;
}

describe('Google sign-in (OpenID Connect, PKCE, state and nonce)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let sessionRedis: RoleCheckedRedis;
  let keys: ReturnType<typeof createKeys>;

  const get = (url: string, cookie?: string) =>
    fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });

  /** Step 1: the browser asks atoll to start; atoll answers with a redirect and the binding cookie. */
  const start = async (returnTo = '/welcome'): Promise<Started> => {
    const res = await get(`${stack.gatewayUrl}/api/auth/google?returnTo=${encodeURIComponent(returnTo)}`);
    expect(res.status).toBe(302);
    const authorizeUrl = res.headers.get('location') ?? '';
    const binding = /atoll_oauth_binding=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1] ?? '';
    const url = new URL(authorizeUrl);
    expect(url.searchParams.get('code_challenge_method')).toBe('S256');
    expect(url.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get('nonce')).toBeTruthy();
    return { authorizeUrl, binding, state: url.searchParams.get('state') ?? '' };
  };
  /** Step 2: the provider (no login page here) sends the browser back with a code. */
  const authorize = async (started: Started): Promise<string> => {
    const res = await get(started.authorizeUrl);
    expect(res.status).toBe(302);
    return res.headers.get('location') ?? '';
  };
  /** Step 3: back at atoll with whatever binding cookie the browser has. */
  const callback = (callbackUrl: string, binding: string | null) =>
    get(callbackUrl, binding === null ? undefined : `atoll_oauth_binding=${binding}`);
  const sessionCookie = (res: Response) =>
    /atoll_session=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
  const expectRefused = async (res: Response, code: string) => {
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(((await res.json()) as { code: string }).code).toBe(code);
    expect(sessionCookie(res)).toBeUndefined();
  };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('google'));
    api = apiClient(stack.gatewayUrl);
    keys = createKeys(stack.envOf('auth').REDIS_KEY_PREFIX as string);
    sessionRedis = await redisOf(stack, 'session');
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await dispose();
  });

  /**
   * Changes the claims of the next ID token the provider signs. (It signs the access token first, with
   * the same event; only the ID token carries our nonce.)
   */
  const asUser = (claims: Record<string, unknown>) => {
    const hook = (token: { payload: Record<string, unknown> }) => {
      if (token.payload.nonce === undefined) return;
      Object.assign(token.payload, claims);
      stack.oidc.service.off(Events.BeforeTokenSigning, hook);
    };
    stack.oidc.service.on(Events.BeforeTokenSigning, hook);
  };

  it('creates an account and a session, keeps the state in Redis with a TTL, and returns to the path asked for', async () => {
    asUser({ sub: 'g-1', email: 'grace@example.com', email_verified: true, name: 'Grace Hopper' });
    const started = await start('/welcome');
    const stateKey = keys.oauthState(createHash('sha256').update(started.state).digest('hex'));
    expect(await sessionRedis.pttl(stateKey)).toBeGreaterThan(9 * 60_000);
    const res = await callback(await authorize(started), started.binding);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/welcome');
    expect(await sessionRedis.exists(stateKey)).toBe(0); // consumed
    const token = sessionCookie(res) ?? '';
    const me = await api('GET', '/api/user', { token });
    expect(me.status).toBe(200);
    expect(me.body.user).toMatchObject({ email: 'grace@example.com', username: 'gracehopper' });

    // The same Google account later: the same atoll account.
    asUser({ sub: 'g-1', email: 'grace@example.com', email_verified: true, name: 'Grace Hopper' });
    const again = await start();
    const second = await callback(await authorize(again), again.binding);
    const me2 = await api('GET', '/api/user', { token: sessionCookie(second) ?? '' });
    expect(me2.body.user.username).toBe('gracehopper');
  });

  it('links to an existing account by verified email, and refuses an unverified one', async () => {
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'linus', email: 'linus@example.com', password: 'correct horse' } },
    });
    expect(reg.status).toBe(201);
    asUser({ sub: 'g-unverified', email: 'linus@example.com', email_verified: false, name: 'Imposter' });
    const s1 = await start();
    await expectRefused(await callback(await authorize(s1), s1.binding), 'CONFLICT');

    asUser({ sub: 'g-linus', email: 'LINUS@example.com', email_verified: true, name: 'Linus' });
    const s2 = await start();
    const res = await callback(await authorize(s2), s2.binding);
    expect(res.status).toBe(302);
    const me = await api('GET', '/api/user', { token: sessionCookie(res) ?? '' });
    expect(me.body.user.username).toBe('linus');
  });

  it('linking an account whose email nobody verified ends the password and the sessions someone else may have set up', async () => {
    // Someone registers the victim's address first, with a password of their own (pre-account takeover).
    const squatter = await api('POST', '/api/users', {
      body: { user: { username: 'squatter', email: 'victim@example.com', password: 'not my address' } },
    });
    expect(squatter.status).toBe(201);
    const squatterToken = squatter.body.user.token as string;

    // The owner signs in with Google, which vouches for the address.
    asUser({ sub: 'g-victim', email: 'victim@example.com', email_verified: true, name: 'Victim' });
    const started = await start();
    const res = await callback(await authorize(started), started.binding);
    expect(res.status).toBe(302);
    const me = await api('GET', '/api/user', { token: sessionCookie(res) ?? '' });
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe('victim@example.com');

    expect((await api('GET', '/api/user', { token: squatterToken })).status).toBe(401);
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: 'victim@example.com', password: 'not my address' } },
    });
    expect(login.status).toBe(401);

    // The address is verified now, and the notifier hears of it (user.updated v2).
    const queueRedis = await redisOf(stack, 'queue');
    try {
      const verified = async () =>
        ((await queueRedis.xrange(keys.userEvents(), '-', '+')) as Array<[string, string[]]>)
          .map(([, fields]) => decodeEvent(fields))
          .find(
            (e) =>
              e.ok &&
              e.type === 'user.updated' &&
              (e.payload as { email: string; emailVerified: boolean }).email === 'victim@example.com' &&
              (e.payload as { emailVerified: boolean }).emailVerified,
          );
      expect(await eventually(async () => (await verified()) !== undefined)).toBe(true);
      expect(await verified()).toMatchObject({ version: 2 });
    } finally {
      await closeRedis(queueRedis);
    }
  });

  it('linking an account whose owner verified the email keeps its password and sessions', async () => {
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'keeper', email: 'keeper@example.com', password: 'kept for years' } },
    });
    const token = reg.body.user.token as string;
    expect((await api('POST', '/api/user/verification', { token })).status).toBe(202);
    const subject = 'Your atoll verification code: ';
    const mail = () =>
      (stack.smtp?.to('keeper@example.com') ?? []).find((m) => m.subject.startsWith(subject));
    expect(await eventually(async () => mail() !== undefined, 15_000)).toBe(true);
    const code = mail()?.subject.slice(subject.length);
    const confirmed = await api('POST', '/api/user/verification/confirm', {
      token,
      body: { verification: { code } },
    });
    expect(confirmed.status).toBe(200);

    asUser({ sub: 'g-keeper', email: 'keeper@example.com', email_verified: true, name: 'Keeper' });
    const started = await start();
    expect((await callback(await authorize(started), started.binding)).status).toBe(302);
    expect((await api('GET', '/api/user', { token })).status).toBe(200);
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: 'keeper@example.com', password: 'kept for years' } },
    });
    expect(login.status).toBe(200);
  });

  it("a reset by the address's owner unlinks the Google identity of whoever had the account before", async () => {
    // The attacker signs in with his Google identity, then moves the account to the victim's address.
    const signIn = async (claims: Record<string, unknown>) => {
      asUser(claims);
      const started = await start();
      return sessionCookie(await callback(await authorize(started), started.binding)) ?? '';
    };
    const mallory = { sub: 'g-mallory', email: 'mallory@example.com', email_verified: true, name: 'Mallory' };
    const first = await signIn(mallory);
    const moved = await api('PUT', '/api/user', {
      token: first,
      body: { user: { email: 'ceo@example.com' } },
    });
    expect(moved.status).toBe(200);
    // The address's owner takes the account back with a reset link mailed to her.
    expect(
      (await api('POST', '/api/users/password-reset', { body: { user: { email: 'ceo@example.com' } } }))
        .status,
    ).toBe(202);
    const subject = 'Reset your atoll password';
    const mail = () => (stack.smtp?.to('ceo@example.com') ?? []).find((m) => m.subject.startsWith(subject));
    expect(await eventually(async () => mail() !== undefined, 15_000)).toBe(true);
    const link = decodeURIComponent(/reset-password\?token=([^\s"&]+)/.exec(mail()?.text ?? '')?.[1] ?? '');
    const reset = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token: link, password: 'the owner now' } },
    });
    expect(reset.status).toBe(204);
    expect((await api('GET', '/api/user', { token: first })).status).toBe(401);
    // Mallory's Google identity no longer opens it: his next sign-in makes an account of his own.
    const again = await signIn(mallory);
    const me = await api('GET', '/api/user', { token: again });
    expect(me.status).toBe(200);
    expect(me.body.user.email).toBe('mallory@example.com');
    const owner = await api('POST', '/api/users/login', {
      body: { user: { email: 'ceo@example.com', password: 'the owner now' } },
    });
    expect(owner.status).toBe(200);
    expect((await api('GET', '/api/auth/session', { token: again })).body.session.userId).not.toBe(
      (await api('GET', '/api/auth/session', { token: owner.body.user.token })).body.session.userId,
    );
  });

  it('refuses a replayed state', async () => {
    const started = await start();
    const callbackUrl = await authorize(started);
    expect((await callback(callbackUrl, started.binding)).status).toBe(302);
    await expectRefused(await callback(callbackUrl, started.binding), 'OAUTH_STATE_INVALID');
  });

  it('refuses an expired state', async () => {
    const started = await start();
    const callbackUrl = await authorize(started);
    await sessionRedis.pexpire(keys.oauthState(createHash('sha256').update(started.state).digest('hex')), 1);
    await new Promise((r) => setTimeout(r, 20));
    await expectRefused(await callback(callbackUrl, started.binding), 'OAUTH_STATE_INVALID');
  });

  it('refuses a state started in another browser', async () => {
    const victim = await start();
    const attacker = await start();
    const callbackUrl = await authorize(victim);
    const res = await callback(callbackUrl, attacker.binding);
    expect(res.status).toBe(400);
    const body = (await res.json()) as { errors: { state: string[] } };
    expect(body.errors.state).toEqual(['was started in another browser, start again']);
    expect(sessionCookie(res)).toBeUndefined();
    const noCookie = await start();
    await expectRefused(await callback(await authorize(noCookie), null), 'OAUTH_STATE_INVALID');
  });

  it('refuses an ID token with the wrong nonce, audience or expiry', async () => {
    for (const claims of [
      { nonce: 'not-the-nonce' },
      { aud: 'another-client' },
      { exp: Math.floor(Date.now() / 1000) - 600 },
    ]) {
      asUser(claims);
      const started = await start();
      await expectRefused(await callback(await authorize(started), started.binding), 'OAUTH_PROVIDER_ERROR');
    }
  });

  it('refuses a tampered ID token (its signature no longer matches the JWKS)', async () => {
    stack.oidc.service.once(Events.BeforeResponse, (response) => {
      const body = response.body as { id_token: string };
      const [header, payload, signature] = body.id_token.split('.');
      const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString());
      claims.email = 'admin@example.com';
      body.id_token = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    });
    const started = await start();
    await expectRefused(await callback(await authorize(started), started.binding), 'OAUTH_PROVIDER_ERROR');
  });

  it('refuses a return address outside the allow-list before anything starts', async () => {
    const before = (await sessionRedis.keys(`${keys.prefix}:oauth:*`)).length;
    for (const returnTo of [
      'https://evil.example/',
      '//evil.example/x',
      'javascript:alert(1)',
      '/\t/evil.example', // sent as /%09/evil.example: browsers drop the tab and read //evil.example
      '/\\evil.example',
      '/.//evil.example',
    ]) {
      const res = await get(`${stack.gatewayUrl}/api/auth/google?returnTo=${encodeURIComponent(returnTo)}`);
      expect(res.status, returnTo).toBe(422);
      expect(res.headers.get('location')).toBeNull();
      expect(await res.json()).toEqual({
        errors: { returnTo: ['is not an allowed return address'] },
        code: 'VALIDATION_FAILED',
      });
    }
    expect((await sessionRedis.keys(`${keys.prefix}:oauth:*`)).length).toBe(before);
  });

  it('returns to a non-Latin-1 path percent-encoded (/日本), never a 500 after the session exists', async () => {
    asUser({ sub: 'g-nihon', email: 'nihon@example.com', email_verified: true, name: 'Nihon' });
    const started = await start('/日本?q=東京#é');
    const res = await callback(await authorize(started), started.binding);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/%E6%97%A5%E6%9C%AC?q=%E6%9D%B1%E4%BA%AC#%C3%A9');
    const me = await api('GET', '/api/user', { token: sessionCookie(res) ?? '' });
    expect(me.body.user.email).toBe('nihon@example.com');
  });

  it('HEAD of the sign-in start is refused (405) and writes no state; it costs what GET costs', async () => {
    const before = (await sessionRedis.keys(`${keys.prefix}:oauth:*`)).length;
    for (let i = 0; i < 3; i += 1) {
      const res = await fetch(`${stack.gatewayUrl}/api/auth/google?returnTo=%2F`, { method: 'HEAD' });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET');
      expect(res.headers.get('ratelimit-policy')).toContain('"auth"');
    }
    expect((await sessionRedis.keys(`${keys.prefix}:oauth:*`)).length).toBe(before);
  });

  /** Stops the provider for `ms` (forever when undefined), on the port auth knows it by. */
  const providerDown = async (ms?: number) => {
    const port = Number(new URL(stack.oidc.issuer.url ?? '').port);
    await stack.oidc.stop();
    const back = async () => {
      await stack.oidc.start(port, '127.0.0.1');
    };
    if (ms === undefined) return back;
    const restarted = new Promise<void>((resolve, reject) => {
      setTimeout(() => back().then(resolve, reject), ms);
    });
    return () => restarted;
  };

  it('a provider unreachable for a moment at the callback is asked again, and the sign-in succeeds', async () => {
    asUser({ sub: 'g-blip', email: 'blip@example.com', email_verified: true, name: 'Blip' });
    const started = await start();
    const callbackUrl = await authorize(started);
    // Refused connections for 150 ms: the token request is sent again after PROVIDER_RETRY_DELAY_MS.
    const back = await providerDown(150);
    const res = await callback(callbackUrl, started.binding);
    await back();
    expect(res.status).toBe(302);
    const me = await api('GET', '/api/user', { token: sessionCookie(res) ?? '' });
    expect(me.body.user.email).toBe('blip@example.com');
  });

  it('a provider that stays unreachable at the callback is a 503 to start again, with no session and no account', async () => {
    asUser({ sub: 'g-down', email: 'down@example.com', email_verified: true, name: 'Down' });
    const started = await start();
    const callbackUrl = await authorize(started);
    const back = await providerDown();
    try {
      const res = await callback(callbackUrl, started.binding);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        errors: { google: ['is unavailable, try again shortly'] },
        code: 'OAUTH_PROVIDER_UNAVAILABLE',
      });
      expect(sessionCookie(res)).toBeUndefined();
    } finally {
      await back();
    }
    expect(
      (
        await api('POST', '/api/users/login', {
          body: { user: { email: 'down@example.com', password: 'x'.repeat(12) } },
        })
      ).status,
    ).toBe(401);
    // Once it is back, a new sign-in works (the state of the failed one was spent).
    asUser({ sub: 'g-down', email: 'down@example.com', email_verified: true, name: 'Down' });
    const again = await start();
    const res = await callback(await authorize(again), again.binding);
    expect(res.status).toBe(302);
    expect((await api('GET', '/api/user', { token: sessionCookie(res) ?? '' })).body.user.email).toBe(
      'down@example.com',
    );
  });
});
