/**
 * Favorites, follows, comments and @mentions end to end: content enqueues a job per cause (none for
 * your own doing, none lost while redis-queue is down), and the notifier turns each into an in-app
 * notification, a live event on every gateway instance, and an email (comments and mentions at once,
 * follows and favorites in the digest), received by the stack's SMTP server. Notification mail goes
 * only to verified addresses and only for verified accounts' actions (older than
 * NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS, 0 here): every account here verifies its address first
 * (apps/notifier/test/mail-rules.test.ts has the rules). A live stream that reconnects with
 * Last-Event-ID misses nothing.
 */
import { Producer } from '@atoll/jobs';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { ServiceProcess, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, startTestStack, verifyEmail } from './helpers.ts';
import { openStream, type SseClient } from './sse.ts';

describe('notifications end to end', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let secondGateway: ServiceProcess;
  let queueRedis: RoleCheckedRedis;
  let producer: Producer;
  const users: Record<string, { token: string; id: string; email: string }> = {};
  const streams: SseClient[] = [];
  const mails = (name: string) => stack.smtp?.to(users[name]?.email ?? '') ?? [];
  /** The notification emails (no welcome, no verification code). */
  const notices = (name: string) =>
    mails(name).filter((m) => m.subject.startsWith('atoll: ') || m.subject.includes('atoll digest'));
  const list = async (name: string) =>
    (await api('GET', '/api/notifications', { token: users[name]?.token })).body;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('notify', {
      SSE_HEARTBEAT_MS: '300',
      ADMIN_EMAILS: 'dan@example.com',
      NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: '0',
    }));
    api = apiClient(stack.gatewayUrl);
    secondGateway = await ServiceProcess.start('gateway', { ...stack.envOf('gateway'), PORT: '0' });
    queueRedis = await redisOf(stack, 'queue');
    producer = new Producer(queueRedis, createKeys(stack.envOf('notifier').REDIS_KEY_PREFIX as string));
    for (const name of ['amy', 'ben', 'cat']) {
      const email = `${name}@example.com`;
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email, password: 'correct horse' } },
      });
      const token = res.body.user.token as string;
      const id = (await api('GET', '/api/auth/session', { token })).body.session.userId as string;
      users[name] = { token, id, email };
      // Mentions resolve usernames through content's profiles, kept from the user events.
      await eventually(async () => (await api('GET', `/api/profiles/${name}`)).status === 200);
      await verifyEmail(api, stack, token, email);
    }
  }, 90_000);
  afterAll(async () => {
    for (const s of streams) s.close();
    await producer.close();
    await closeRedis(queueRedis);
    await secondGateway.stop();
    await dispose();
  });

  it('welcomes every new account by email', async () => {
    const welcomes = (n: string) => mails(n).filter((m) => m.subject === 'Welcome to atoll');
    expect(await eventually(async () => ['amy', 'ben', 'cat'].every((n) => welcomes(n).length === 1))).toBe(
      true,
    );
  });

  it('turns each cause into one row, one live event on both gateways, and its email or digest line', async () => {
    const amyHere = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, users.amy?.token ?? '');
    const amyThere = await openStream(
      `${secondGateway.url}/api/notifications/stream`,
      users.amy?.token ?? '',
    );
    const benThere = await openStream(
      `${secondGateway.url}/api/notifications/stream`,
      users.ben?.token ?? '',
    );
    streams.push(amyHere, amyThere, benThere);
    expect([amyHere.status, amyThere.status, benThere.status]).toEqual([200, 200, 200]);

    const post = await api('POST', '/api/articles', {
      token: users.amy?.token,
      body: {
        article: { title: 'Notify me', description: 'd', body: 'Thanks @ben for the idea', tagList: [] },
      },
    });
    const slug = post.body.article.slug as string;
    await api('POST', '/api/profiles/amy/follow', { token: users.ben?.token });
    await api('POST', '/api/profiles/amy/follow', { token: users.ben?.token }); // again: no second one
    await api('POST', `/api/articles/${slug}/favorite`, { token: users.cat?.token });
    await api('POST', `/api/articles/${slug}/favorite`, { token: users.amy?.token }); // own article
    await api('POST', `/api/articles/${slug}/comments`, {
      token: users.ben?.token,
      body: { comment: { body: 'Nice! cc @cat @nobody' } },
    });

    // Rows: amy has a follow, a favorite and a comment; ben and cat one mention each.
    expect(await eventually(async () => (await list('amy')).notifications.length === 3, 20_000)).toBe(true);
    const amy = await list('amy');
    expect(amy.unreadCount).toBe(3);
    expect(amy.notifications.map((n: { type: string }) => n.type).sort()).toEqual([
      'comment',
      'favorite',
      'follow',
    ]);
    expect(amy.notifications.find((n: { type: string }) => n.type === 'comment')).toMatchObject({
      actor: { username: 'ben' },
      article: { slug, title: 'Notify me' },
      excerpt: 'Nice! cc @cat @nobody',
    });
    expect(await eventually(async () => (await list('cat')).notifications.length === 1)).toBe(true);
    expect((await list('cat')).notifications[0]).toMatchObject({
      type: 'mention',
      actor: { username: 'ben' },
    });
    expect((await list('ben')).notifications).toMatchObject([
      { type: 'mention', actor: { username: 'amy' }, commentId: null },
    ]);

    // Live: the same three events with the rows' ids on both gateway instances.
    const ids = amy.notifications.map((n: { id: number }) => String(n.id)).sort();
    for (const stream of [amyHere, amyThere]) {
      expect(await eventually(async () => stream.events.length === 3)).toBe(true);
      expect(stream.events.map((e) => e.id).sort()).toEqual(ids);
      expect(stream.events.every((e) => e.event === 'notification')).toBe(true);
    }
    expect(await eventually(async () => benThere.events.length === 1)).toBe(true);
    expect(JSON.parse(benThere.events[0]?.data ?? '{}')).toMatchObject({ type: 'mention' });
    expect(await eventually(async () => amyHere.comments > 0)).toBe(true); // heartbeats

    // Email: the comment and the mentions at once; the follow and the favorite wait for the digest.
    expect(await eventually(async () => notices('amy').length === 1)).toBe(true);
    expect(notices('amy')[0]?.text).toContain('ben commented on "Notify me": Nice! cc @cat @nobody');
    expect(await eventually(async () => notices('cat').length === 1 && notices('ben').length === 1)).toBe(
      true,
    );
    expect(notices('cat')[0]?.text).toContain('ben mentioned you in "Notify me": Nice! cc @cat @nobody');
    expect(notices('ben')[0]?.subject).toBe('atoll: amy mentioned you in "Notify me"');
    await new Promise((r) => setTimeout(r, 500));
    expect(notices('amy')).toHaveLength(1);
    await producer.enqueue('digests', 'run', { v: 1, period: 'daily' }, { jobId: 'e2e-digest' });
    expect(await eventually(async () => notices('amy').length === 2)).toBe(true);
    const digest = notices('amy')[1];
    expect(digest?.subject).toBe('Your daily atoll digest: 2 new notifications');
    expect(digest?.text).toContain('ben started following you.');
    expect(digest?.text).toContain('cat favorited "Notify me".');
  });

  it('replays what a stream missed when it reconnects with Last-Event-ID', async () => {
    const first = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, users.cat?.token ?? '');
    streams.push(first);
    await api('POST', '/api/profiles/cat/follow', { token: users.amy?.token });
    expect(await eventually(async () => first.events.length === 1)).toBe(true);
    const lastSeen = first.events[0]?.id ?? '';
    first.close();
    // While cat is away: two more.
    await api('POST', '/api/profiles/cat/follow', { token: users.ben?.token });
    const post = await api('POST', '/api/articles', {
      token: users.cat?.token,
      body: { article: { title: 'Away', description: 'd', body: 'b' } },
    });
    await api('POST', `/api/articles/${post.body.article.slug}/favorite`, { token: users.ben?.token });
    expect(await eventually(async () => (await list('cat')).notifications.length === 4)).toBe(true);

    const again = await openStream(
      `${secondGateway.url}/api/notifications/stream`,
      users.cat?.token ?? '',
      lastSeen,
    );
    streams.push(again);
    expect(await eventually(async () => again.events.length === 2)).toBe(true);
    const missed = (await list('cat')).notifications
      .filter((n: { id: number }) => n.id > Number(lastSeen))
      .map((n: { id: number }) => String(n.id))
      .sort();
    expect(again.events.map((e) => e.id).sort()).toEqual(missed);
    // And it goes on live after the catch-up.
    await api('POST', '/api/profiles/ben/follow', { token: users.cat?.token });
    await api('POST', `/api/articles/${post.body.article.slug}/favorite`, { token: users.amy?.token });
    expect(await eventually(async () => again.events.length === 3)).toBe(true);
    expect(new Set(again.events.map((e) => e.id)).size).toBe(3);
  });

  it('refuses the stream without a session, and ends streams with a shutdown event when a gateway stops', async () => {
    const anonymous = await fetch(`${secondGateway.url}/api/notifications/stream`);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.json()).toMatchObject({ code: 'TOKEN_MISSING' });
    const stream = await openStream(`${secondGateway.url}/api/notifications/stream`, users.ben?.token ?? '');
    const exited = secondGateway.stop('SIGTERM');
    await stream.ended;
    expect(stream.events.at(-1)?.event).toBe('shutdown');
    expect((await exited).code).toBe(0);
    secondGateway = await ServiceProcess.start('gateway', { ...stack.envOf('gateway'), PORT: '0' });
  });

  it('opens the queue dashboard to an admin once their email is verified, through the gateway', async () => {
    const dan = { email: 'dan@example.com', password: 'correct horse' };
    const registered = await api('POST', '/api/users', { body: { user: { username: 'dan', ...dan } } });
    const token = registered.body.user.token as string;
    expect((await api('GET', '/api/admin/queues', { token })).status).toBe(403); // not verified
    await verifyEmail(api, stack, token, dan.email);
    const login = await api('POST', '/api/users/login', { body: { user: dan } });
    const admin = login.body.user.token as string;
    const counts = await api('GET', '/api/admin/queues', { token: admin });
    expect(counts.status).toBe(200);
    expect(counts.body.queues.email.completed).toBeGreaterThan(0);
    const board = await fetch(`${stack.gatewayUrl}/api/admin/queues/board`, {
      headers: { authorization: `Token ${admin}` },
    });
    expect(board.status).toBe(200);
    expect(await board.text()).toContain('<html');
    expect((await api('GET', '/api/admin/queues', { token: users.ben?.token })).status).toBe(403);
    expect((await api('GET', '/api/admin/queues')).status).toBe(401);
  });

  it('keeps the write and delivers the notification later when redis-queue is down', async () => {
    const post = await api('POST', '/api/articles', {
      token: users.cat?.token,
      body: { article: { title: 'While down', description: 'd', body: 'b' } },
    });
    const before = (await list('cat')).notifications.length;
    await stack.redis.queue.stop();
    let favorite: { status: number; body: any };
    try {
      favorite = await api('POST', `/api/articles/${post.body.article.slug}/favorite`, {
        token: users.amy?.token,
      });
    } finally {
      await stack.redis.queue.restart();
    }
    expect(favorite.status).toBe(200);
    expect(favorite.body.article.favoritesCount).toBe(1);
    expect(
      await eventually(async () => (await list('cat')).notifications.length === before + 1, 20_000),
    ).toBe(true);
  });

  it('mails notifications to the new address once the email is changed, never to the old one', async () => {
    const ben = users.ben as { token: string; email: string };
    const newEmail = 'ben.moved@example.com';
    const changed = await api('PUT', '/api/user', {
      token: ben.token,
      body: { user: { email: newEmail, currentPassword: 'correct horse' } },
    });
    expect(changed.status).toBe(200);
    // The old address hears of the change, on the security queue; after that, nothing more.
    expect(
      await eventually(async () =>
        mails('ben').some((m) => m.subject === 'Your atoll email address was changed'),
      ),
    ).toBe(true);
    const toOld = mails('ben').length;
    // The new address is mailed once it is verified (a code to it, confirmed).
    await verifyEmail(api, stack, ben.token, newEmail);
    const post = await api('POST', '/api/articles', {
      token: ben.token,
      body: { article: { title: 'Moved house', description: 'd', body: 'b' } },
    });
    await api('POST', `/api/articles/${post.body.article.slug}/comments`, {
      token: users.cat?.token,
      body: { comment: { body: 'Welcome to the new place' } },
    });
    const atNew = () => stack.smtp?.to(newEmail) ?? [];
    expect(
      await eventually(
        async () => atNew().some((m) => m.text.includes('cat commented on "Moved house"')),
        20_000,
      ),
    ).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(mails('ben')).toHaveLength(toOld);
  });
  it('cuts a long text for its notification at a whole character, never inside an emoji', async () => {
    // Index 276 holds the first half of a surrogate pair: a cut after 277 units would keep half an emoji.
    const long = (lead: string) =>
      `${lead}${'a'.repeat(276 - lead.length)}\u{1F600} and more, past the 280 units a notification keeps`;
    const post = await api('POST', '/api/articles', {
      token: users.amy?.token,
      body: { article: { title: 'Long, with an emoji', description: 'd', body: long('@cat '), tagList: [] } },
    });
    expect(post.status, JSON.stringify(post.body)).toBe(201);
    const slug = post.body.article.slug as string;
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token: users.cat?.token,
      body: { comment: { body: long('') } },
    });
    expect(comment.status, JSON.stringify(comment.body)).toBe(201);
    type Row = { type: string; article?: { slug: string }; excerpt?: string };
    const about = async (name: string, type: string) =>
      ((await list(name)).notifications as Row[]).find((n) => n.type === type && n.article?.slug === slug);
    expect(await eventually(async () => (await about('amy', 'comment')) !== undefined, 20_000)).toBe(true);
    expect((await about('amy', 'comment'))?.excerpt).toBe(`${'a'.repeat(276)}...`);
    expect(await eventually(async () => (await about('cat', 'mention')) !== undefined, 20_000)).toBe(true);
    expect((await about('cat', 'mention'))?.excerpt).toBe(`@cat ${'a'.repeat(271)}...`);
  });
});
