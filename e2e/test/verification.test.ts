/**
 * Email verification codes and password resets through the gateway: what is stored (hashes, with TTLs),
 * what is mailed (the notifier's email, received by the stack's SMTP server), single use, attempt
 * limits, and a 503 that leaves nothing behind when the queue is down.
 */
import { createHash } from 'node:crypto';
import { decodeEvent } from '@atoll/events';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, startTestStack } from './helpers.ts';

describe('verification codes and password resets', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let sessionRedis: RoleCheckedRedis;
  let keys: ReturnType<typeof createKeys>;
  let n = 0;
  const register = async () => {
    n += 1;
    const user = { username: `ver${n}`, email: `ver${n}@example.com`, password: 'correct horse' };
    const res = await api('POST', '/api/users', { body: { user } });
    return { ...user, token: res.body.user.token as string };
  };
  const SUBJECTS = { code: 'Your atoll verification code: ', reset: 'Reset your atoll password' };
  const mailsFor = (kind: keyof typeof SUBJECTS, to: string) =>
    (stack.smtp?.to(to) ?? []).filter((m) => m.subject.startsWith(SUBJECTS[kind]));
  /** The email the notifier sent, as the SMTP server received it. */
  const mailFor = async (kind: keyof typeof SUBJECTS, to: string) => {
    await eventually(async () => mailsFor(kind, to).length > 0, 15_000);
    const mail = mailsFor(kind, to)[0];
    if (!mail) throw new Error(`no ${kind} email to ${to}`);
    return mail;
  };
  const codeIn = (mail: { subject: string }) => mail.subject.slice(SUBJECTS.code.length);
  const tokenIn = (mail: { text: string }) =>
    decodeURIComponent(/reset-password\?token=([^\s"&]+)/.exec(mail.text)?.[1] ?? '');
  const askReset = (email: string) => api('POST', '/api/users/password-reset', { body: { user: { email } } });
  const confirmReset = (token: string, password: string) =>
    api('POST', '/api/users/password-reset/confirm', { body: { reset: { token, password } } });
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;
  const userIdOf = async (token: string) =>
    (await api('GET', '/api/auth/session', { token })).body.session.userId as string;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('verification'));
    api = apiClient(stack.gatewayUrl);
    keys = createKeys(stack.envOf('auth').REDIS_KEY_PREFIX as string);
    sessionRedis = await redisOf(stack, 'session');
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await dispose();
  });

  it('mails a 6-digit code, keeps only its hash, and accepts it once', async () => {
    const ada = await register();
    const sent = await api('POST', '/api/user/verification', { token: ada.token });
    expect(sent.status).toBe(202);
    const mail = await mailFor('code', ada.email);
    const code = codeIn(mail);
    expect(code).toMatch(/^\d{6}$/);
    expect(mail.text).toContain(`your verification code is ${code}`);
    expect(mail.html).toContain(`your verification code is ${code}`);
    const userId = await userIdOf(ada.token);
    const record = await sessionRedis.hgetall(keys.verificationCode(userId));
    expect(JSON.stringify(record)).not.toContain(code);
    expect(await sessionRedis.pttl(keys.verificationCode(userId))).toBeGreaterThan(14 * 60_000);

    const wrong = await api('POST', '/api/user/verification/confirm', {
      token: ada.token,
      body: { verification: { code: code === '000000' ? '111111' : '000000' } },
    });
    expect(wrong.status).toBe(422);
    expect(wrong.body.errors).toEqual({ code: ['is invalid'] });
    // From a browser (the session cookie alone): the user comes back without the cookie's token.
    const right = await api('POST', '/api/user/verification/confirm', {
      headers: { cookie: `atoll_session=${ada.token}` },
      body: { verification: { code } },
    });
    expect(right.status).toBe(200);
    expect(right.body.user.email).toBe(ada.email);
    expect(right.body.user.token).toBe('');
    const again = await api('POST', '/api/user/verification/confirm', {
      token: ada.token,
      body: { verification: { code } },
    });
    expect(again.status).toBe(422);
    const resend = await api('POST', '/api/user/verification', { token: ada.token });
    expect(resend.status).toBe(409);
    expect(resend.body.errors).toEqual({ email: ['is already verified'] });
    // The notifier hears of it: user.updated v2, verified, on the user events Stream (no code in it).
    const queueRedis = await redisOf(stack, 'queue');
    try {
      const verifiedEvent = async () => {
        const entries = (await queueRedis.xrange(keys.userEvents(), '-', '+')) as Array<[string, string[]]>;
        return entries
          .map(([, fields]) => decodeEvent(fields))
          .find(
            (e) => e.ok && e.type === 'user.updated' && (e.payload as { userId: string }).userId === userId,
          );
      };
      expect(await eventually(async () => (await verifiedEvent()) !== undefined)).toBe(true);
      expect(await verifiedEvent()).toMatchObject({
        version: 2,
        payload: { email: ada.email, emailVerified: true },
      });
      expect(JSON.stringify(await verifiedEvent())).not.toContain(code);
    } finally {
      await closeRedis(queueRedis);
    }
  });

  it('verifies only the address the code was mailed to: an email change ends the code (N1)', async () => {
    const eve = await register();
    expect((await api('POST', '/api/user/verification', { token: eve.token })).status).toBe(202);
    const code = codeIn(await mailFor('code', eve.email));
    // The code is mailed to eve's address; she then claims an address she cannot read.
    const moved = await api('PUT', '/api/user', {
      token: eve.token,
      body: { user: { email: `ceo${n}@example.com` } },
    });
    expect(moved.status).toBe(200);
    const userId = await userIdOf(eve.token);
    expect(await sessionRedis.exists(keys.verificationCode(userId))).toBe(0);
    const confirmed = await api('POST', '/api/user/verification/confirm', {
      token: eve.token,
      body: { verification: { code } },
    });
    expect(confirmed.status).toBe(422);
    expect(confirmed.body.errors).toEqual({ code: ['has expired or was used up, ask for a new one'] });
    // Back to the address the code went to: the old code still verifies nothing.
    expect(
      (await api('PUT', '/api/user', { token: eve.token, body: { user: { email: eve.email } } })).status,
    ).toBe(200);
    const back = await api('POST', '/api/user/verification/confirm', {
      token: eve.token,
      body: { verification: { code } },
    });
    expect(back.status).toBe(422);
    // A fresh code to the address she reads works.
    expect((await api('POST', '/api/user/verification', { token: eve.token })).status).toBe(202);
    await eventually(async () => mailsFor('code', eve.email).length === 2, 15_000);
    const fresh = codeIn(mailsFor('code', eve.email)[1] as { subject: string });
    const ok = await api('POST', '/api/user/verification/confirm', {
      token: eve.token,
      body: { verification: { code: fresh } },
    });
    expect(ok.status).toBe(200);
    expect(ok.body.user.email).toBe(eve.email);
  });

  it('counts wrong codes as failed attempts: 5 per code, then 429 even for the right one, and across new codes', async () => {
    const bob = await register();
    await api('POST', '/api/user/verification', { token: bob.token });
    const code = codeIn(await mailFor('code', bob.email));
    const wrongCode = code === '999999' ? '888888' : '999999';
    const confirm = (value: string) =>
      api('POST', '/api/user/verification/confirm', {
        token: bob.token,
        body: { verification: { code: value } },
      });
    for (let i = 0; i < 5; i += 1) expect((await confirm(wrongCode)).status).toBe(422);
    // The code is used up...
    expect(await sessionRedis.exists(keys.verificationCode(await userIdOf(bob.token)))).toBe(0);
    // ...and the account is locked for this address: the right code waits too.
    const late = await confirm(code);
    expect(late.status).toBe(429);
    expect(late.body.code).toBe('AUTH_TOO_MANY_ATTEMPTS');
    expect(Number(late.headers.get('retry-after'))).toBeGreaterThan(0);
    // Asking for a new code does not start the count over.
    expect((await api('POST', '/api/user/verification', { token: bob.token })).status).toBe(202);
    await eventually(async () => mailsFor('code', bob.email).length === 2, 15_000);
    const fresh = codeIn(mailsFor('code', bob.email)[1] as { subject: string });
    expect((await confirm(fresh)).status).toBe(429);
  });

  it('resets a password with a single-use link token; every session ends', async () => {
    const carol = await register();
    const unknown = await api('POST', '/api/users/password-reset', {
      body: { user: { email: 'nobody@example.com' } },
    });
    expect(unknown.status).toBe(202);

    const asked = await api('POST', '/api/users/password-reset', {
      body: { user: { email: carol.email.toUpperCase() } },
    });
    expect(asked.status).toBe(202);
    const mail = await mailFor('reset', carol.email);
    const token = decodeURIComponent(/reset-password\?token=([^\s"&]+)/.exec(mail.text)?.[1] ?? '');
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(mail.html).toContain('reset-password?token=');
    const stored = keys.passwordReset(createHash('sha256').update(token).digest('hex'));
    // The account's id, and a fingerprint of the account state the link is good for.
    const [storedId, state] = (await sessionRedis.get(stored))?.split(' ') ?? [];
    expect(storedId).toBe(await userIdOf(carol.token));
    expect(state).toMatch(/^[0-9a-f]{64}$/);
    expect(mailsFor('reset', 'nobody@example.com')).toEqual([]); // no account, no email
    expect(await sessionRedis.pttl(stored)).toBeGreaterThan(29 * 60_000);

    const short = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'short' } },
    });
    expect(short.status).toBe(422);
    const done = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'brand new pass' } },
    });
    expect(done.status).toBe(204);
    expect((await api('GET', '/api/user', { token: carol.token })).status).toBe(401);
    const reused = await api('POST', '/api/users/password-reset/confirm', {
      body: { reset: { token, password: 'another pass!' } },
    });
    expect(reused.status).toBe(422);
    expect(reused.body.errors).toEqual({ token: ['is invalid or has expired'] });
    const login = await api('POST', '/api/users/login', {
      body: { user: { email: carol.email, password: 'brand new pass' } },
    });
    expect(login.status).toBe(200);
  });

  it('a reset link is good only for the account as it was: a reset with another link, or a new email, ends it', async () => {
    const erin = await register();
    expect((await askReset(erin.email)).status).toBe(202);
    expect((await askReset(erin.email)).status).toBe(202);
    await eventually(async () => mailsFor('reset', erin.email).length === 2, 15_000);
    const [first, second] = mailsFor('reset', erin.email).map(tokenIn);
    expect((await confirmReset(first ?? '', 'first new pass')).status).toBe(204);
    const stale = await confirmReset(second ?? '', 'second new pass');
    expect(stale.status).toBe(422);
    expect(stale.body.errors).toEqual({ token: ['is invalid or has expired'] });
    const login = (password: string) =>
      api('POST', '/api/users/login', { body: { user: { email: erin.email, password } } });
    expect((await login('second new pass')).status).toBe(401);
    expect((await login('first new pass')).status).toBe(200);

    // A link mailed to the old address is no way back into an account that moved to a new one.
    const fay = await register();
    expect((await askReset(fay.email)).status).toBe(202);
    const token = tokenIn(await mailFor('reset', fay.email));
    const moved = await api('PUT', '/api/user', {
      token: fay.token,
      body: { user: { email: `moved-${fay.email}` } }, // just signed up: no current password needed
    });
    expect(moved.status).toBe(200);
    const old = await confirmReset(token, 'taken over!');
    expect(old.status).toBe(422);
    expect(old.body.errors).toEqual({ token: ['is invalid or has expired'] });

    // Nor once the email is changed back: the link was bound to the credentials as they were.
    const gus = await register();
    expect((await askReset(gus.email)).status).toBe(202);
    const before = tokenIn(await mailFor('reset', gus.email));
    for (const email of [`away-${gus.email}`, gus.email]) {
      expect((await api('PUT', '/api/user', { token: gus.token, body: { user: { email } } })).status).toBe(
        200,
      );
    }
    const back = await confirmReset(before, 'round trip pass');
    expect(back.status).toBe(422);
    expect(back.body.errors).toEqual({ token: ['is invalid or has expired'] });
  });

  it('mails one account at most 3 reset links and 3 codes in 15 minutes, however often someone asks', async () => {
    const gil = await register();
    for (let i = 0; i < 5; i += 1) expect((await askReset(gil.email)).status).toBe(202);
    for (let i = 0; i < 3; i += 1) {
      expect((await api('POST', '/api/user/verification', { token: gil.token })).status).toBe(202);
    }
    const over = await api('POST', '/api/user/verification', { token: gil.token });
    expect(over.status).toBe(429);
    expect(over.body.code).toBe('AUTH_TOO_MANY_ATTEMPTS');
    const retryAfter = Number(over.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    const userId = await userIdOf(gil.token);
    expect(await sessionRedis.pttl(keys.mailCap('reset', userId))).toBeGreaterThan(14 * 60_000);
    expect(await sessionRedis.pttl(keys.mailCap('code', userId))).toBeGreaterThan(14 * 60_000);
    await eventually(
      async () => mailsFor('reset', gil.email).length >= 3 && mailsFor('code', gil.email).length >= 3,
      15_000,
    );
    await new Promise((r) => setTimeout(r, 2000)); // anything else queued would have arrived by now
    expect(mailsFor('reset', gil.email)).toHaveLength(3);
    expect(mailsFor('code', gil.email)).toHaveLength(3);
  });

  it('takes as long to answer a reset request for an unknown email as for a known one', async () => {
    const hal = await register();
    const userId = await userIdOf(hal.token);
    const timed = async (email: string) => {
      const started = performance.now();
      expect((await askReset(email)).status).toBe(202);
      return performance.now() - started;
    };
    await timed('warm-up@example.com');
    const known: number[] = [];
    const unknown: number[] = [];
    for (let i = 0; i < 30; i += 1) {
      await sessionRedis.del(keys.mailCap('reset', userId)); // the whole path every time: token, job
      known.push(await timed(hal.email));
      unknown.push(await timed(`nobody-${i}@example.com`));
    }
    const [k, u] = [median(known), median(unknown)];
    expect(Math.abs(k - u), `medians: known ${k.toFixed(1)} ms, unknown ${u.toFixed(1)} ms`).toBeLessThan(
      Math.max(3, 0.2 * Math.min(k, u)),
    );
  });

  it('keeps no code or reset token in any job or event: all of redis-queue is scanned', async () => {
    const eve = await register();
    expect((await api('POST', '/api/user/verification', { token: eve.token })).status).toBe(202);
    expect((await askReset(eve.email)).status).toBe(202);
    const code = codeIn(await mailFor('code', eve.email));
    const token = tokenIn(await mailFor('reset', eve.email));
    expect(code).toMatch(/^\d{6}$/);
    expect(token.length).toBeGreaterThanOrEqual(32);
    // Every secret mailed during this file so far, the two above included.
    const mailed = (stack.smtp?.received ?? []).flatMap((m) =>
      m.subject.startsWith(SUBJECTS.code) ? [codeIn(m)] : m.subject === SUBJECTS.reset ? [tokenIn(m)] : [],
    );
    expect(mailed.length).toBeGreaterThanOrEqual(2);
    const queueRedis = await redisOf(stack, 'queue');
    try {
      // Every key of redis-queue, whatever its type: jobs in every state, their logs, the event Stream.
      const dump: string[] = [];
      for (const key of await queueRedis.keys('*')) {
        const type = await queueRedis.type(key);
        const value =
          type === 'string'
            ? await queueRedis.get(key)
            : type === 'hash'
              ? await queueRedis.hgetall(key)
              : type === 'list'
                ? await queueRedis.lrange(key, 0, -1)
                : type === 'set'
                  ? await queueRedis.smembers(key)
                  : type === 'zset'
                    ? await queueRedis.zrange(key, '0', '-1')
                    : type === 'stream'
                      ? await queueRedis.xrange(key, '-', '+')
                      : null;
        dump.push(`${key} ${JSON.stringify(value)}`);
      }
      const text = dump.join('\n');
      expect(text).toContain('security-email'); // the jobs are there, completed
      for (const secret of mailed) expect(text).not.toContain(secret);
    } finally {
      await closeRedis(queueRedis);
    }
    // And the secrets' mail records are gone once the emails are out.
    expect(await eventually(async () => (await sessionRedis.keys(keys.mailSecret('*'))).length === 0)).toBe(
      true,
    );
    // The mailed secrets still work.
    const right = await api('POST', '/api/user/verification/confirm', {
      token: eve.token,
      body: { verification: { code } },
    });
    expect(right.status).toBe(200);
    expect((await confirmReset(token, 'a brand new passphrase')).status).toBe(204);
  });

  it('answers 503 QUEUE_UNAVAILABLE and keeps no code when redis-queue is down', async () => {
    const dan = await register();
    const danId = await userIdOf(dan.token);
    await stack.redis.queue.stop();
    try {
      const res = await api('POST', '/api/user/verification', { token: dan.token });
      expect(res.status).toBe(503);
      expect(res.body).toEqual({
        errors: { queue: ['is unavailable, nothing was sent; try again shortly'] },
        code: 'QUEUE_UNAVAILABLE',
      });
      expect(await sessionRedis.exists(keys.verificationCode(danId))).toBe(0);
      expect(await sessionRedis.keys(keys.mailSecret('*'))).toEqual([]);
    } finally {
      await stack.redis.queue.restart();
    }
  });
});
