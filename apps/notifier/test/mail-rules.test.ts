/**
 * The rules of notification mail (N7, N8), on a notifier in-process with real Redis, PostgreSQL and
 * SMTP: caps per recipient and per actor fold the surplus into the digest; nothing an account did is
 * mailed (at once or in a digest) unless it is verified and older than NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS;
 * nothing is mailed to an unverified address; mail follows the address a `user.updated` v2 event
 * gives, and the previous event version is still applied.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NotifierFixture, startNotifier, type TestUser, until } from './fixture.ts';

const DAY = 86_400_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('notification mail rules', () => {
  let n: NotifierFixture;
  const register = async (u: TestUser, opts: { verified: boolean; ageMs: number }) => {
    await n.event('user.registered', {
      ...u,
      emailVerified: opts.verified,
      bio: null,
      image: null,
      occurredAt: new Date(Date.now() - opts.ageMs).toISOString(),
    });
    await n.smtp.waitFor(u.email); // the welcome: the recipient is known
  };
  const notMailed = async (to: string, count: number) => {
    await sleep(500);
    return n.smtp.to(to).length === count;
  };
  const digest = async (jobId: string) => {
    await n.producer.enqueue('digests', 'run', { v: 1, period: 'daily' }, { jobId });
    await until(
      () => n.producer.queueOf('digests').getJobState(jobId),
      (s) => s === 'completed',
    );
  };
  /** A user.updated v2 that says the address is verified; waits until the notifier has it. */
  const verify = async (u: TestUser, occurredAt = new Date()) => {
    await n.event('user.updated', {
      ...u,
      emailVerified: true,
      bio: null,
      image: null,
      occurredAt: occurredAt.toISOString(),
    });
    await until(
      async () =>
        (
          await n.db
            .selectFrom('recipients')
            .select('email_verified')
            .where('user_id', '=', u.userId)
            .executeTakeFirst()
        )?.email_verified,
      (v) => v === true,
    );
  };
  const unread = async (u: TestUser) =>
    n.db
      .selectFrom('notifications')
      .select(['type', 'email_deferred'])
      .where('recipient_id', '=', u.userId)
      .where('read_at', 'is', null)
      .execute();

  beforeAll(async () => {
    n = await startNotifier({ NOTIFY_MAIL_CAP_PER_RECIPIENT: '3', NOTIFY_MAIL_CAP_PER_ACTOR: '5' });
  }, 60_000);
  afterAll(async () => {
    await n.close();
  });

  it('mails a recipient at most the cap per window; the rest waits, unread, for the digest', async () => {
    const rita = n.user('rita');
    const alf = n.user('alf');
    await register(rita, { verified: true, ageMs: 2 * DAY });
    await register(alf, { verified: true, ageMs: 2 * DAY });
    for (let i = 1; i <= 5; i++) await n.notify('comment', alf, rita, `comment number ${i}`);
    const mails = await n.smtp.waitFor(rita.email, 4); // welcome + 3
    expect(await notMailed(rita.email, 4)).toBe(true);
    expect(mails.slice(1).every((m) => m.subject.startsWith('atoll: alf commented'))).toBe(true);
    const rows = await until(
      () => unread(rita),
      (r) => r.length === 5,
    );
    expect(rows.filter((r) => r.email_deferred)).toHaveLength(2);

    await n.producer.enqueue('digests', 'run', { v: 1, period: 'daily' }, { jobId: 'digest-caps' });
    const digest = (await n.smtp.waitFor(rita.email, 5))[4];
    expect(digest?.subject).toBe('Your daily atoll digest: 2 new notifications');
    // The two comments whose email was held back (jobs run concurrently: not necessarily the last two).
    const all = [1, 2, 3, 4, 5].map((i) => `comment number ${i}`);
    const held = all.filter((t) => !mails.slice(1).some((m) => m.text.includes(t)));
    expect(held).toHaveLength(2);
    for (const text of held) expect(digest?.text).toContain(text);
  });

  it('mails at most the cap of emails one actor causes, across recipients', async () => {
    const loud = n.user('loud');
    await register(loud, { verified: true, ageMs: 2 * DAY });
    const targets = Array.from({ length: 7 }, (_, i) => n.user(`target${i}`));
    for (const t of targets) await register(t, { verified: true, ageMs: 2 * DAY });
    for (const t of targets) await n.notify('comment', loud, t, 'buy now');
    await until(
      () => targets.filter((t) => n.smtp.to(t.email).length === 2).length,
      (sent) => sent >= 5,
    );
    await sleep(500);
    const sent = targets.filter((t) => n.smtp.to(t.email).length === 2);
    expect(sent).toHaveLength(5);
  });

  it('mails a mention only from a verified account older than the setting; otherwise in-app only', async () => {
    const mia = n.user('mia');
    const fresh = n.user('fresh');
    const unverified = n.user('unverified');
    const trusted = n.user('trusted');
    await register(mia, { verified: true, ageMs: 2 * DAY });
    await register(fresh, { verified: true, ageMs: 60_000 });
    await register(unverified, { verified: false, ageMs: 2 * DAY });
    await register(trusted, { verified: true, ageMs: 2 * DAY });
    await n.notify('mention', fresh, mia, 'from a new account');
    await n.notify('mention', unverified, mia, 'from an unverified account');
    await n.notify('mention', trusted, mia, 'from a trusted account');
    const [, mention] = await n.smtp.waitFor(mia.email, 2);
    expect(mention?.text).toContain('trusted mentioned you in "A post": from a trusted account');
    expect(await notMailed(mia.email, 2)).toBe(true);
    expect(
      await until(
        () => unread(mia),
        (r) => r.length === 3,
      ),
    ).toHaveLength(3); // every mention is in-app

    // Verified later (a user.updated v2): the same account's next mention is mailed.
    await verify(unverified);
    await n.notify('mention', unverified, mia, 'now verified');
    expect((await n.smtp.waitFor(mia.email, 3))[2]?.text).toContain('now verified');
  });

  it('mails the address of the latest user.updated, never the old one; applies v1 events still', async () => {
    const olga = n.user('olga');
    const ned = n.user('ned');
    await register(olga, { verified: true, ageMs: 2 * DAY });
    await register(ned, { verified: true, ageMs: 2 * DAY });
    const changed = { ...olga, email: 'olga.new@example.com' };
    await n.event('user.updated', {
      ...changed,
      emailVerified: false,
      bio: null,
      image: null,
      occurredAt: new Date().toISOString(),
    });
    await until(
      async () =>
        (
          await n.db
            .selectFrom('recipients')
            .select('email')
            .where('user_id', '=', olga.userId)
            .executeTakeFirst()
        )?.email,
      (e) => e === changed.email,
    );
    // An older event arriving late changes nothing.
    await n.event('user.updated', {
      ...olga,
      emailVerified: true,
      bio: null,
      image: null,
      occurredAt: new Date(Date.now() - 60_000).toISOString(),
    });
    // A v1 event (an auth not yet upgraded) renames, and keeps the address.
    const v1 = {
      userId: olga.userId,
      username: 'olga2',
      bio: null,
      image: null,
      occurredAt: new Date(Date.now() + 1000).toISOString(),
    };
    await n.queueRedis.xadd(
      n.keys.userEvents(),
      '*',
      'type',
      'user.updated',
      'v',
      '1',
      'data',
      JSON.stringify(v1),
    );
    await until(
      async () =>
        (
          await n.db
            .selectFrom('recipients')
            .select('username')
            .where('user_id', '=', olga.userId)
            .executeTakeFirst()
        )?.username,
      (u) => u === 'olga2',
    );
    // The new address is not verified yet: nothing is mailed there (nor to the old one).
    await n.notify('comment', ned, olga, 'while unverified');
    await until(
      () => unread(olga),
      (r) => r.length === 1,
    );
    expect(await notMailed(changed.email, 0)).toBe(true);
    await verify({ ...changed, username: 'olga2' }, new Date(Date.now() + 2000));
    await n.notify('comment', ned, olga, 'to the new address');
    const [mail] = await n.smtp.waitFor(changed.email, 1);
    expect(mail?.text).toContain('Hi olga2,');
    expect(mail?.text).toContain('to the new address');
    expect(await notMailed(olga.email, 1)).toBe(true); // the welcome only
    expect(await notMailed(changed.email, 1)).toBe(true);
  });

  it('mails nothing a throwaway account did, at once or in the digest: not its words, not its name', async () => {
    const vera = n.user('vera');
    const author = n.user('author');
    const phish = 'Your account is suspended, log in at http://evil.test/login';
    const throwaway = { ...n.user('throwaway'), username: phish }; // a username is any text up to 64
    const fresh = n.user('fresh2');
    await register(vera, { verified: true, ageMs: 2 * DAY });
    await register(author, { verified: true, ageMs: 2 * DAY });
    await register(throwaway, { verified: false, ageMs: 0 });
    await register(fresh, { verified: true, ageMs: 60_000 });
    await n.notify('comment', throwaway, vera, phish);
    await n.notify('comment', fresh, vera, phish);
    await n.notify('follow', throwaway, vera, '');
    await n.notify('follow', fresh, vera, '');
    // In-app, every one of them.
    expect(
      await until(
        () => unread(vera),
        (r) => r.length === 4,
      ),
    ).toHaveLength(4);
    expect(await notMailed(vera.email, 1)).toBe(true); // the welcome only
    await digest('digest-throwaway');
    expect(await notMailed(vera.email, 1)).toBe(true); // no digest: nothing in it may be mailed

    // A trusted account's comment and follow are mailed as before, the follow in the digest.
    await n.notify('comment', author, vera, 'a fair point');
    await n.notify('follow', author, vera, '');
    const [, comment] = await n.smtp.waitFor(vera.email, 2);
    expect(comment?.text).toContain('author commented on "A post": a fair point');
    await until(
      () => unread(vera),
      (r) => r.length === 6,
    );
    await digest('digest-trusted');
    const [, , daily] = await n.smtp.waitFor(vera.email, 3);
    expect(daily?.subject).toBe('Your daily atoll digest: 1 new notification');
    expect(daily?.text).toContain('author started following you.');
    for (const mail of n.smtp.to(vera.email))
      expect(`${mail.subject} ${mail.text}`).not.toContain('evil.test');
  });

  it('puts no username into the mail that goes to addresses nobody proved: welcome, code, reset', async () => {
    // A sign-up with someone else's address and a username that reads as a message of atoll's own.
    const phish = 'Your account is suspended, log in at http://evil.test/login';
    const victim = { ...n.user('victim'), username: phish };
    await register(victim, { verified: false, ageMs: 0 });
    const expiresAt = '2030-01-01T00:00:00Z';
    const secure = { v: 2 as const, userId: victim.userId, to: victim.email, username: phish, expiresAt };
    await n.sessionRedis.set(n.keys.mailSecret('phish-code'), '123456', 'PX', 60_000);
    await n.producer.enqueue('security-email', 'verification-code', secure, { jobId: 'phish-code' });
    await n.sessionRedis.set(n.keys.mailSecret('phish-reset'), 'reset-token', 'PX', 60_000);
    await n.producer.enqueue('security-email', 'password-reset', secure, { jobId: 'phish-reset' });
    const mails = await n.smtp.waitFor(victim.email, 3);
    expect(mails.map((m) => m.subject).sort()).toEqual([
      'Reset your atoll password',
      'Welcome to atoll',
      'Your atoll verification code: 123456',
    ]);
    for (const mail of mails) expect(`${mail.subject} ${mail.text} ${mail.html}`).not.toContain('evil.test');
  });

  it('mails no notification and no digest to an unverified address, or one whose verification is unknown', async () => {
    const uma = n.user('uma');
    const vic = n.user('vic'); // described by a v1 event only: verification unknown
    const sender = n.user('sender');
    await register(uma, { verified: false, ageMs: 2 * DAY });
    await register(sender, { verified: true, ageMs: 2 * DAY });
    await n.queueRedis.xadd(
      n.keys.userEvents(),
      '*',
      'type',
      'user.registered',
      'v',
      '1',
      'data',
      JSON.stringify({
        ...vic,
        bio: null,
        image: null,
        occurredAt: new Date(Date.now() - 2 * DAY).toISOString(),
      }),
    );
    await n.smtp.waitFor(vic.email); // the welcome: the recipient is known
    for (const to of [uma, vic]) {
      await n.notify('comment', sender, to, 'to an unproven address');
      await n.notify('follow', sender, to, '');
    }
    for (const to of [uma, vic]) {
      await until(
        () => unread(to),
        (r) => r.length === 2,
      );
    }
    await digest('digest-unverified');
    expect(await notMailed(uma.email, 1)).toBe(true); // the welcome only
    expect(await notMailed(vic.email, 1)).toBe(true);

    // Verified: the next comment is mailed.
    await verify(uma);
    await n.notify('comment', sender, uma, 'now to a proven address');
    expect((await n.smtp.waitFor(uma.email, 2))[1]?.text).toContain('now to a proven address');
  });
});
