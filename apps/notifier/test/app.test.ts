/**
 * The notifier in-process (`buildApp`) on real redis-queue and redis-session servers, a real PostgreSQL
 * and a real SMTP server that receives and parses every email: each email job, the notification
 * fan-out (row, live event, email or digest), preferences, the API, the admin routes, SMTP refusing
 * then recovering, idempotency, and a graceful shutdown that lets the active job finish.
 */
import { randomUUID } from 'node:crypto';
import { encodeEvent } from '@atoll/events';
import type { Producer } from '@atoll/jobs';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { gatewayHeaders, type SmtpTestServer } from '@atoll/testkit';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type NotifierFixture, startNotifier, until } from './fixture.ts';

const silent = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('notifier on real Redis, PostgreSQL and SMTP', () => {
  let n: NotifierFixture;
  let smtp: SmtpTestServer;
  let app: FastifyInstance;
  let redis: RoleCheckedRedis;
  let subscriber: RoleCheckedRedis;
  let sessionRedis: RoleCheckedRedis;
  let producer: Producer;
  let keys: Keys;
  const live: Array<{ userId: string; notification: { id: number; type: string } }> = [];

  const user = (name: string) => ({ userId: randomUUID(), username: name, email: `${name}@example.com` });
  const amy = user('amy');
  const ben = user('ben');
  const as = (who: { userId: string; username: string }, roles = ['user']) => ({
    userId: who.userId,
    username: who.username,
    sessionId: 's',
    roles,
  });
  /** A request as the gateway sends it: with an assertion for `caller` (or for nobody). */
  const inject = (
    opts: { url: string; method?: InjectOptions['method']; payload?: InjectOptions['payload'] } & {
      caller?: ReturnType<typeof as>;
    },
  ) => {
    const { caller, ...request } = opts;
    const method = String(request.method ?? 'GET');
    return app.inject({
      ...request,
      headers: gatewayHeaders(n.identityKeys, 'notifier', {
        method,
        url: request.url,
        identity: caller ?? null,
      }),
    });
  };
  const register = (u: typeof amy) =>
    redis.xadd(
      keys.userEvents(),
      '*',
      ...encodeEvent('user.registered', {
        ...u,
        emailVerified: true,
        bio: null,
        image: null,
        occurredAt: new Date().toISOString(),
      }),
    );
  const notify = (job: 'follow' | 'comment', from: typeof amy, to: typeof amy, id: string) =>
    producer.enqueue(
      'notifications',
      job,
      {
        v: 1,
        actorId: from.userId,
        actorUsername: from.username,
        recipientId: to.userId,
        occurredAt: new Date().toISOString(),
        ...(job === 'comment'
          ? { articleSlug: 'how-to', articleTitle: 'How to <b>', commentId: 7, excerpt: 'Nice one & thanks' }
          : {}),
      } as never,
      { jobId: id },
    );
  beforeAll(async () => {
    // Every account here is verified and new: their actions are mailed (mail-rules.test.ts has the rule).
    n = await startNotifier({ NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: '0' });
    ({ app, smtp, producer, sessionRedis, keys } = n);
    redis = n.queueRedis;
    subscriber = await connectRedis({
      url: n.urls.session,
      role: 'session',
      use: 'subscriber',
      name: 's',
      log: silent,
    });
    await subscriber.subscribe(keys.liveNotifications());
    subscriber.on('message', (_c: string, raw: string) => live.push(JSON.parse(raw)));
  }, 60_000);
  afterAll(async () => {
    await closeRedis(subscriber);
    await n.close();
  });

  it('is ready when its Redis servers and its schema answer', async () => {
    expect((await app.inject({ url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      checks: { 'redis-queue': 'up', 'redis-session': 'up', postgres: 'up' },
    });
  });

  it('welcomes a registered user by email, once, and keeps them as a recipient', async () => {
    await register(amy);
    await register(amy); // the Stream delivers at least once
    await register(ben);
    const [welcome] = await smtp.waitFor(amy.email);
    expect(welcome?.subject).toBe('Welcome to atoll');
    expect(welcome?.text).toContain('Hello,\n\nwelcome to atoll.');
    expect(welcome?.text).not.toContain('amy'); // no name: the address may be someone else's
    expect(welcome?.html).toContain('<a href="http://atoll.test">');
    await smtp.waitFor(ben.email);
    await sleep(300);
    expect(smtp.to(amy.email)).toHaveLength(1);
  });

  it('sends a verification code as text and HTML from its short-lived record, exactly once per job', async () => {
    const to = 'code@example.com';
    const payload = { v: 2 as const, userId: 'u1', to, username: 'cody', expiresAt: '2030-01-01T00:00:00Z' };
    await sessionRedis.set(keys.mailSecret('vc-1'), '123456', 'PX', 60_000);
    await producer.enqueue('security-email', 'verification-code', payload, { jobId: 'vc-1' });
    const [mail] = await smtp.waitFor(to);
    expect(mail?.subject).toBe('Your atoll verification code: 123456');
    expect(mail?.text).toContain('your verification code is 123456');
    expect(mail?.html).toContain('<p>your verification code is 123456.');
    const security = producer.queueOf('security-email');
    await until(
      () => security.getJobState('vc-1'),
      (s) => s === 'completed',
    );
    // Sent, so the record is gone; the job never held the code.
    expect(await sessionRedis.exists(keys.mailSecret('vc-1'))).toBe(0);
    expect(JSON.stringify((await security.getJob('vc-1'))?.data)).not.toContain('123456');
    // The same job again (BullMQ keeps completed jobs, so remove it first to force a second run).
    await security.remove('vc-1');
    await producer.enqueue('security-email', 'verification-code', payload, { jobId: 'vc-1' });
    await until(
      () => security.getJobState('vc-1'),
      (s) => s === 'completed',
    );
    expect(smtp.to(to)).toHaveLength(1);
  });

  it('fails a code email whose secret expired before it went out, and drops a retired v1 job with its secret', async () => {
    const security = producer.queueOf('security-email');
    await producer.enqueue(
      'security-email',
      'password-reset',
      { v: 2, userId: 'u2', to: 'late@example.com', username: 'late', expiresAt: '2030-01-01T00:00:00Z' },
      { jobId: 'reset-expired' },
    );
    const late = await until(
      () => security.getJob('reset-expired'),
      (j) => (j?.failedReason ?? '') !== '',
    );
    expect(late?.failedReason).toMatch(/expired before it was mailed/);
    expect(late?.attemptsMade).toBe(1);

    const email = producer.queueOf('email');
    await email.add(
      'verification-code',
      {
        v: 1,
        userId: 'u3',
        to: 'old@example.com',
        username: 'old',
        code: '654321',
        expiresAt: '2030-01-01T00:00:00Z',
      },
      { jobId: 'old-code' },
    );
    const old = await until(
      () => email.getJob('old-code'),
      (j) => (j?.failedReason ?? '') !== '',
    );
    expect(old?.data).toEqual({ v: 1, retired: true });
    expect(smtp.to('old@example.com')).toHaveLength(0);
    expect(smtp.to('late@example.com')).toHaveLength(0);
  });

  it('turns a comment into a row, a live event and an email; a follow waits for the digest', async () => {
    await notify('comment', ben, amy, 'comment-1');
    await notify('follow', ben, amy, 'follow-1');
    const mails = await smtp.waitFor(amy.email, 2);
    const comment = mails[1];
    expect(comment?.subject).toBe('atoll: ben commented on "How to <b>"');
    expect(comment?.text).toContain('ben commented on "How to <b>": Nice one & thanks');
    expect(comment?.html).toContain('How to &#60;b&#62;');
    expect(comment?.html).toContain('href="http://atoll.test/article/how-to"');
    const events = await until(
      () => live.filter((m) => m.userId === amy.userId),
      (l) => l.length === 2,
    );
    expect(events.map((e) => e.notification.type).sort()).toEqual(['comment', 'follow']);

    const list = await inject({ url: '/api/notifications', caller: as(amy) });
    expect(list.statusCode).toBe(200);
    expect(list.json().unreadCount).toBe(2);
    expect(list.json().notifications.map((n: { type: string }) => n.type)).toEqual(['follow', 'comment']);
    expect(list.json().notifications[1]).toMatchObject({
      actor: { username: 'ben' },
      article: { slug: 'how-to', title: 'How to <b>' },
      excerpt: 'Nice one & thanks',
      read: false,
    });
    await sleep(300);
    expect(smtp.to(amy.email)).toHaveLength(2); // welcome + comment: the follow is for the digest

    // The digest: what is unread since the last one, for the types mailed by digest.
    await producer.enqueue('digests', 'run', { v: 1, period: 'daily' }, { jobId: 'digest-test-1' });
    const digest = (await smtp.waitFor(amy.email, 3))[2];
    expect(digest?.subject).toBe('Your daily atoll digest: 1 new notification');
    expect(digest?.text).toContain('ben started following you.');
    expect(digest?.text).not.toContain('commented');
    await producer.enqueue('digests', 'run', { v: 1, period: 'daily' }, { jobId: 'digest-test-2' });
    await until(
      () => producer.queueOf('digests').getJobState('digest-test-2'),
      (s) => s === 'completed',
    );
    await sleep(300);
    expect(smtp.to(amy.email)).toHaveLength(3); // nothing new since the last digest
  });

  it('never duplicates a notification row or its email when a job runs again', async () => {
    await notify('comment', amy, ben, 'comment-again');
    await smtp.waitFor(ben.email, 2);
    await until(
      () => producer.queueOf('notifications').getJobState('comment-again'),
      (s) => s === 'completed',
    );
    await producer.queueOf('notifications').remove('comment-again');
    await notify('comment', amy, ben, 'comment-again');
    await until(
      () => producer.queueOf('notifications').getJobState('comment-again'),
      (s) => s === 'completed',
    );
    await sleep(300);
    const list = await inject({ url: '/api/notifications', caller: as(ben) });
    expect(list.json().notifications).toHaveLength(1);
    expect(smtp.to(ben.email)).toHaveLength(2); // welcome + one comment
  });

  it('pages newest first, catches up after an id, marks read, and refuses bad input with 422', async () => {
    const page = await inject({ url: '/api/notifications?limit=1', caller: as(amy) });
    const [newest] = page.json().notifications;
    expect(page.json().next).toBe(newest.id);
    const older = await inject({
      url: `/api/notifications?limit=1&before=${newest.id}`,
      caller: as(amy),
    });
    expect(older.json().notifications[0].type).toBe('comment');
    const after = await inject({ url: '/api/notifications?after=0', caller: as(amy) });
    expect(after.json().notifications.map((n: { type: string }) => n.type)).toEqual(['comment', 'follow']);
    const since = await inject({ url: `/api/notifications?after=${newest.id}`, caller: as(amy) });
    expect(since.json().notifications).toEqual([]);

    const one = await inject({
      method: 'POST',
      url: '/api/notifications/read',
      caller: as(amy),
      payload: { notifications: { ids: [newest.id] } },
    });
    expect(one.json()).toEqual({ updated: 1, unreadCount: 1 });
    const notMine = await inject({
      method: 'POST',
      url: '/api/notifications/read',
      caller: as(ben),
      payload: { notifications: { all: true } },
    });
    expect(notMine.json()).toEqual({ updated: 1, unreadCount: 0 });
    expect((await inject({ url: '/api/notifications', caller: as(amy) })).json().unreadCount).toBe(1);

    for (const payload of [
      {},
      { notifications: { ids: [] } },
      { notifications: { ids: ['x'] } },
      { notifications: { all: false } },
    ]) {
      const bad = await inject({
        method: 'POST',
        url: '/api/notifications/read',
        caller: as(amy),
        payload,
      });
      expect(bad.statusCode, JSON.stringify(payload)).toBe(422);
      expect(Object.keys(bad.json().errors).length).toBeGreaterThan(0);
    }
    expect((await inject({ url: '/api/notifications?limit=0', caller: as(amy) })).statusCode).toBe(422);
    expect((await inject({ url: '/api/notifications' })).statusCode).toBe(401);
  });

  it('keeps preferences: partial updates, validated, and followed by the fan-out', async () => {
    const initial = await inject({ url: '/api/notifications/preferences', caller: as(ben) });
    expect(initial.json()).toEqual({
      preferences: {
        email: { follow: 'digest', favorite: 'digest', comment: 'instant', mention: 'instant' },
        digest: 'daily',
      },
    });
    const put = await inject({
      method: 'PUT',
      url: '/api/notifications/preferences',
      caller: as(ben),
      payload: { preferences: { email: { follow: 'instant', comment: 'off' } } },
    });
    expect(put.json().preferences).toEqual({
      email: { follow: 'instant', favorite: 'digest', comment: 'off', mention: 'instant' },
      digest: 'daily',
    });
    const bad = await inject({
      method: 'PUT',
      url: '/api/notifications/preferences',
      caller: as(ben),
      payload: { preferences: { email: { follow: 'sometimes' } } },
    });
    expect(bad.statusCode).toBe(422);
    await notify('follow', amy, ben, 'follow-ben');
    const mails = await smtp.waitFor(ben.email, 3);
    expect(mails[2]?.subject).toBe('atoll: amy started following you.');
  });

  it('retries while SMTP refuses, with backoff, then delivers exactly one email', async () => {
    smtp.refuse(true);
    const to = 'retry@example.com';
    await producer.enqueue(
      'email',
      'welcome',
      { v: 1, userId: 'u-retry', to, username: 'retry' },
      { jobId: 'welcome-retry' },
    );
    const email = producer.queueOf('email');
    const job = await until(
      () => email.getJob('welcome-retry'),
      (j) => (j?.attemptsMade ?? 0) >= 2,
      20_000,
    );
    expect(await job?.getState()).toBe('delayed'); // waiting out its backoff
    expect(smtp.refusedConnections).toBeGreaterThanOrEqual(2);
    smtp.refuse(false);
    await smtp.waitFor(to, 1, 20_000);
    await until(
      () => email.getJobState('welcome-retry'),
      (s) => s === 'completed',
    );
    expect(smtp.to(to)).toHaveLength(1);
  }, 45_000);

  it('fails an invalid payload at once with the reason, visible in the counts', async () => {
    await producer.queueOf('email').add('welcome', { v: 1, to: 'nobody' }, { jobId: 'bad-welcome' });
    const failed = await until(
      () => producer.queueOf('email').getJob('bad-welcome'),
      (j) => j?.failedReason !== undefined && j.failedReason !== '',
    );
    expect(failed?.attemptsMade).toBe(1);
    expect(failed?.failedReason).toMatch(/userId|username|to/);
    const counts = await inject({ url: '/api/admin/queues', caller: as(amy, ['user', 'admin']) });
    expect(counts.statusCode).toBe(200);
    expect(counts.json().queues.email.failed).toBeGreaterThanOrEqual(1);
    expect(Object.keys(counts.json().queues).sort()).toEqual([
      'digests',
      'email',
      'notifications',
      'security-email',
    ]);
  });

  it('keeps the queue dashboard to admins', async () => {
    expect((await inject({ url: '/api/admin/queues' })).statusCode).toBe(401);
    const user = await inject({ url: '/api/admin/queues', caller: as(amy) });
    expect(user.statusCode).toBe(403);
    expect(user.json()).toEqual({ errors: { user: ['is not an admin'] }, code: 'FORBIDDEN' });
    expect((await inject({ url: '/api/admin/queues/board', caller: as(amy) })).statusCode).toBe(403);
    const board = await inject({ url: '/api/admin/queues/board', caller: as(amy, ['user', 'admin']) });
    expect(board.statusCode).toBe(200);
    expect(board.headers['content-type']).toMatch(/text\/html/);
    // The page's own script, served by the board behind the same check.
    const main = /src="(static\/js\/main\.[^"]+\.js)"/.exec(board.body)?.[1];
    expect(main).toBeDefined();
    const script = `/api/admin/queues/board/${main}`;
    const asset = await inject({ url: script, caller: as(amy, ['user', 'admin']) });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers['content-type']).toMatch(/javascript/);
    expect(asset.body.length).toBeGreaterThan(1000);
    expect((await inject({ url: script, caller: as(amy) })).statusCode).toBe(403);
    expect((await inject({ url: script })).statusCode).toBe(401);
    const api = await inject({
      url: '/api/admin/queues/board/api/queues',
      caller: as(amy, ['user', 'admin']),
    });
    expect(api.statusCode).toBe(200);
  });

  it('serves the board read-only: every write action is refused, job data is redacted', async () => {
    const admin = () => as(amy, ['user', 'admin']);
    const board = '/api/admin/queues/board/api/queues';
    const email = producer.queueOf('email');
    const [failed] = await email.getJobs(['failed'], 0, 0);
    const jobId = failed?.id ?? 'bad-welcome';
    const writes: Array<[string, string, object?]> = [
      [
        'POST',
        `${board}/email/add`,
        { name: 'welcome', data: { v: 1, userId: 'x', to: 'a@b.c', username: 'x' } },
      ],
      ['PUT', `${board}/email/retry/failed`],
      ['PUT', `${board}/email/${jobId}/retry`],
      ['PATCH', `${board}/email/${jobId}/update-data`, { jobData: { v: 1, to: 'evil@example.com' } }],
      ['PUT', `${board}/email/${jobId}/clean`],
      ['PUT', `${board}/email/${jobId}/promote`],
      ['PUT', `${board}/email/clean/completed`],
      ['PUT', `${board}/email/empty`],
      ['PUT', `${board}/security-email/obliterate`],
      ['PUT', `${board}/email/pause`],
      ['PUT', `${board}/email/promote`],
    ];
    for (const [method, url, payload] of writes) {
      const res = await inject({
        method: method as 'PUT',
        url,
        caller: admin(),
        ...(payload ? { payload } : {}),
      });
      expect(res.statusCode, `${method} ${url}`).toBe(405);
    }
    expect(await email.getJobCountByTypes('failed')).toBeGreaterThanOrEqual(1); // nothing was retried
    expect(await email.isPaused()).toBe(false);

    const read = async (queue: string, status: string) => {
      const res = await inject({
        url: `${board}?activeQueue=${queue}&status=${status}&page=1&jobsPerPage=50`,
        caller: admin(),
      });
      expect(res.statusCode).toBe(200);
      return res.json().queues.find((q: { name: string }) => q.name === queue);
    };
    const welcome = await read('email', 'completed');
    expect(welcome.readOnlyMode).toBe(true);
    expect(welcome.allowRetries).toBe(false);
    const shown = JSON.stringify(welcome.jobs);
    expect(welcome.jobs.length).toBeGreaterThan(0);
    expect(shown).toContain('[redacted]');
    for (const personal of [amy.email, ben.email, 'Nice one & thanks', 'How to <b>'])
      expect(shown).not.toContain(personal);
    const security = JSON.stringify((await read('security-email', 'completed')).jobs);
    expect(security).toContain('"v":2');
    expect(security).not.toContain('code@example.com');
    const one = await inject({ url: `${board}/security-email/vc-1`, caller: admin() });
    expect(one.statusCode).toBe(200);
    expect(one.json().job.data).toEqual({
      v: 2,
      userId: 'u1',
      to: '[redacted]',
      username: '[redacted]',
      expiresAt: '2030-01-01T00:00:00Z',
    });
  });

  it('lets the active job finish when it shuts down', async () => {
    const release = smtp.hold();
    const to = 'shutdown@example.com';
    await producer.enqueue(
      'email',
      'welcome',
      { v: 1, userId: 'u-sd', to, username: 'sd' },
      { jobId: 'welcome-sd' },
    );
    await until(
      () => producer.queueOf('email').getJobState('welcome-sd'),
      (s) => s === 'active',
    );
    const closing = app.close();
    await sleep(500);
    release();
    await closing;
    expect(await producer.queueOf('email').getJobState('welcome-sd')).toBe('completed');
    expect(smtp.to(to)).toHaveLength(1);
    app = await n.restart(); // for afterAll
  });
});
