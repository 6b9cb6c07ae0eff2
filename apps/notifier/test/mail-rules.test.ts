/**
 * The rules of instant notification mail (N7, N8), on a notifier in-process with real Redis,
 * PostgreSQL and SMTP: caps per recipient and per actor fold the surplus into the digest; mentions are
 * mailed only from verified accounts older than MENTION_MAIL_MIN_ACCOUNT_AGE_MS; mail follows the
 * address a `user.updated` v2 event gives, and the previous event version is still applied.
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
    await n.event('user.updated', {
      ...unverified,
      emailVerified: true,
      bio: null,
      image: null,
      occurredAt: new Date().toISOString(),
    });
    await until(
      async () =>
        (
          await n.db
            .selectFrom('recipients')
            .select('email_verified')
            .where('user_id', '=', unverified.userId)
            .executeTakeFirst()
        )?.email_verified,
      (v) => v === true,
    );
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
    await n.notify('comment', ned, olga, 'to the new address');
    const [mail] = await n.smtp.waitFor(changed.email, 1);
    expect(mail?.text).toContain('Hi olga2,');
    expect(await notMailed(olga.email, 1)).toBe(true); // the welcome only
  });
});
