/**
 * N instances as one, on Redis Cluster: every role a cluster (18 nodes) under two instances each of auth,
 * content and notifier behind the gateway, one stack for the file. Checked through the public API, the
 * instances directly (as the gateway calls them), the mail sink and the notifier's records:
 * - the digest: with a period of 2 s (DIGEST_DAILY_CRON with seconds) the two notifiers together run it
 *   once per period (runs ≈ periods, not twice as many; the fence moved once per run) and the
 *   user gets one digest per period with what happened in it, never a line twice;
 * - a limit of auth's (failed logins per account and address, 4 here) counted across both auth
 *   instances: two failures on each and the fifth attempt is refused by both, even with the right password;
 * - log out everywhere through one auth instance: at once no request with either session's token is
 *   anyone's on any path (auth, content through both instances, notifier, the live stream);
 * - a write through either content instance is read at once through the other (cache invalidation) and
 *   reaches the author's live stream at the gateway (the notifier on either instance publishes it).
 */
import { gatewayHeaders, type Stack } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import {
  crossSlotErrors,
  directToContent,
  eventually,
  IDENTITY_KEYS,
  sessionIdentity,
  signUpAll,
  startTestStack,
  verifyEmail,
} from './helpers.ts';
import { openStream, type SseClient } from './sse.ts';

const PERIOD_MS = 2000;
const LOGIN_LIMIT = 4;
const PASSWORD = 'correct horse';

describe('two instances of each service as one, every Redis role a cluster', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let db: pg.Client;
  let tokens: Record<string, string>;
  const streams: SseClient[] = [];

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack(
      'instances',
      {
        // Digests every 2 s (a cron with seconds); the weekly one keeps its Monday 07:00.
        DIGEST_DAILY_CRON: `*/${PERIOD_MS / 1000} * * * * *`,
        NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: '0',
        LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS: String(LOGIN_LIMIT),
        SSE_HEARTBEAT_MS: '500',
      },
      { cluster: ['cache', 'session', 'queue'], instances: { auth: 2, content: 2, notifier: 2 } },
    ));
    api = apiClient(stack.gatewayUrl);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    tokens = await signUpAll(api, ['wren', 'finch', 'lock', 'sam'], PASSWORD);
    // Digest lines and notification mail only between verified accounts.
    await verifyEmail(api, stack, tokens.wren as string, 'wren@example.com');
    await verifyEmail(api, stack, tokens.finch as string, 'finch@example.com');
  }, 150_000);
  afterAll(async () => {
    for (const s of streams) s.close();
    await db?.end();
    await dispose?.();
  });

  it('runs two instances of auth, content and notifier on clusters', () => {
    for (const name of ['auth', 'content', 'notifier'] as const)
      expect(stack.instances[name]).toHaveLength(2);
    for (const role of ['cache', 'session', 'queue'] as const)
      expect(stack.clusters[role]?.nodes).toHaveLength(6);
  });

  it('sends one digest per period across both notifiers', async () => {
    const digests = () =>
      (stack.smtp?.to('wren@example.com') ?? []).filter((m) => m.subject.includes('atoll digest'));
    const runLines = (since: number) =>
      stack.instances.notifier.flatMap((proc, instance) =>
        proc.logs
          .filter((l) => l.msg === 'digest run' && l.period === 'daily' && Number(l.time) >= since)
          .map((l) => ({ instance, mailed: l.mailed as number | undefined, skipped: l.skipped })),
      );
    const fence = async () =>
      Number(
        (await db.query(`SELECT fence FROM notifier.lock_fences WHERE name = 'digest-daily'`)).rows[0]
          ?.fence ?? 0,
      );
    // Digests run already (every 2 s since start); wait for one and start at a period's beginning.
    expect(await eventually(async () => (await fence()) > 0, 10_000)).toBe(true);
    await new Promise((r) => setTimeout(r, PERIOD_MS - (Date.now() % PERIOD_MS) + 100));
    const started = Date.now();
    const fenceBefore = await fence();
    const before = digests().length;

    const titles: string[] = [];
    for (let i = 0; i < 3; i++) {
      const title = `Digest ${i} ${Date.now()}`;
      const post = await api('POST', '/api/articles', {
        token: tokens.wren,
        body: { article: { title, description: 'd', body: 'b', tagList: [] } },
      });
      expect(post.status).toBe(201);
      // A favorite is a digest line by default (follow and favorite: digest; comment, mention: at once).
      const fav = await api('POST', `/api/articles/${post.body.article.slug}/favorite`, {
        token: tokens.finch,
      });
      expect(fav.status).toBe(200);
      titles.push(title);
      const line = `finch favorited "${title}".`;
      expect(
        await eventually(async () => digests().some((m) => m.text.includes(line)), 5 * PERIOD_MS),
        `a digest with ${line}`,
      ).toBe(true);
    }
    // Two more periods: nothing new happened, so no digest, and no run mails a line again.
    await new Promise((r) => setTimeout(r, 2 * PERIOD_MS + 500));
    const ended = Date.now();

    const sent = digests().slice(before);
    expect(sent.map((m) => m.subject)).toEqual(
      titles.map(() => 'Your daily atoll digest: 1 new notification'),
    );
    for (const [i, title] of titles.entries())
      expect(sent.filter((m) => m.text.includes(`"${title}"`)).map((m) => sent.indexOf(m))).toEqual([i]);

    // The runs: one per period, whichever notifier takes it (the job scheduler makes one job per tick,
    // and the lock lets one run at a time). Runs are counted by when they logged, so a run of the tick
    // before the start may log after it, and one of the last ticks may not have logged yet: ±2. Both
    // notifiers running every tick would be twice as many, whether the second found the lock busy or not.
    const runs = runLines(started).filter((r) => Number.isFinite(r.mailed) || r.skipped);
    const acquired = runs.filter((r) => !r.skipped);
    const periods = Math.floor(ended / PERIOD_MS) - Math.floor(started / PERIOD_MS);
    const fenceAfter = await fence();
    console.log(
      `digests: ${periods} periods in ${ended - started} ms, ${runs.length} runs ` +
        `(notifier 1: ${runs.filter((r) => r.instance === 0).length}, notifier 2: ${runs.filter((r) => r.instance === 1).length}), ` +
        `${runs.length - acquired.length} found the lock busy, fence ${fenceBefore} -> ${fenceAfter}, ${sent.length} digests mailed`,
    );
    expect(periods).toBeGreaterThanOrEqual(5);
    expect(runs.length).toBeGreaterThanOrEqual(periods - 2);
    expect(runs.length).toBeLessThanOrEqual(periods + 2);
    // Each run that held the lock moved the fence once (its writes checked it).
    expect(Math.abs(fenceAfter - fenceBefore - acquired.length)).toBeLessThanOrEqual(1);
    expect(runs.reduce((n, r) => n + (r.mailed ?? 0), 0)).toBe(titles.length);
  });

  it('counts failed logins across both auth instances: the limit is reached two and two', async () => {
    const [a, b] = stack.instances.auth.map((p) => p.url) as [string, string];
    // As the gateway would call auth for a client at another address than the test's own.
    const login = async (base: string, password: string) => {
      const url = '/api/users/login';
      const res = await fetch(`${base}${url}`, {
        method: 'POST',
        headers: {
          ...gatewayHeaders(IDENTITY_KEYS, 'auth', { method: 'POST', url, clientIp: '198.51.100.23' }),
          'content-type': 'application/json',
        },
        body: JSON.stringify({ user: { email: 'lock@example.com', password } }),
      });
      await res.arrayBuffer();
      return res.status;
    };
    const failures: number[] = [];
    for (let i = 0; i < LOGIN_LIMIT; i++) failures.push(await login(i % 2 === 0 ? a : b, 'wrong horse'));
    // Each instance saw two failures, the limit is four: the count is one for both.
    expect(
      failures.every((s) => s !== 429 && s !== 200),
      `failures answered ${failures}`,
    ).toBe(true);
    expect([await login(a, 'wrong horse'), await login(b, 'wrong horse')]).toEqual([429, 429]);
    expect([await login(a, PASSWORD), await login(b, PASSWORD)]).toEqual([429, 429]);
    // Per account and address: the owner signs in from their own address all the same (through the gateway).
    const own = await api('POST', '/api/users/login', {
      body: { user: { email: 'lock@example.com', password: PASSWORD } },
    });
    expect(own.status).toBe(200);
  });

  it('logs out everywhere through one auth instance: both tokens refused at once on every path', async () => {
    const second = await api('POST', '/api/users/login', {
      body: { user: { email: 'sam@example.com', password: PASSWORD } },
    });
    expect(second.status).toBe(200);
    const first = tokens.sam as string;
    const other = second.body.user.token as string;
    const slug = (
      await api('POST', '/api/articles', {
        token: first,
        body: { article: { title: `Sam ${Date.now()}`, description: 'd', body: 'b', tagList: [] } },
      })
    ).body.article.slug as string;
    expect((await api('POST', `/api/articles/${slug}/favorite`, { token: first })).status).toBe(200);
    const paths = ['/api/user', '/api/articles/feed', `/api/articles/${slug}`, '/api/notifications'];
    // Every path (each twice: the gateway takes the instances in turn) knows both sessions first.
    for (const token of [first, other])
      for (const path of [...paths, ...paths]) expect((await api('GET', path, { token })).status).toBe(200);
    const stream = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, first);
    streams.push(stream);
    expect(stream.status).toBe(200);

    // Through the first auth instance, as the gateway would send it for the second session.
    const identity = await sessionIdentity(api, other);
    const url = '/api/user/sessions';
    const out = await fetch(`${stack.instances.auth[0]?.url}${url}`, {
      method: 'DELETE',
      headers: gatewayHeaders(IDENTITY_KEYS, 'auth', { method: 'DELETE', url, identity }),
    });
    expect(out.status).toBe(204);

    const seen: string[] = [];
    for (const token of [first, other])
      for (const path of [...paths, ...paths]) {
        const res = await api('GET', path, { token });
        // An article is public: read anonymously, so not favorited by anyone signed in.
        if (path === `/api/articles/${slug}`)
          seen.push(`${path} ${res.status} favorited=${res.body.article?.favorited}`);
        else seen.push(`${path} ${res.status}`);
      }
    expect(seen).toEqual(
      [0, 1].flatMap(() =>
        [...paths, ...paths].map((p) =>
          p === `/api/articles/${slug}` ? `${p} 200 favorited=false` : `${p} 401`,
        ),
      ),
    );
    // The live stream of a revoked session ends at its next heartbeat.
    expect(await eventually(async () => stream.events.some((e) => e.event === 'end'), 5000)).toBe(true);
    expect(JSON.parse(stream.events.find((e) => e.event === 'end')?.data ?? '{}')).toMatchObject({
      reason: 'session-ended',
    });
  });

  it('a write through either content instance is read through the other and reaches the live stream', async () => {
    const [a, b] = stack.instances.content.map((p) => p.url) as [string, string];
    const wren = await sessionIdentity(api, tokens.wren as string);
    const finch = await sessionIdentity(api, tokens.finch as string);
    const post = await api('POST', '/api/articles', {
      token: tokens.wren,
      body: { article: { title: `Live ${Date.now()}`, description: 'd', body: 'b', tagList: [] } },
    });
    const slug = post.body.article.slug as string;
    const article = `/api/articles/${slug}`;
    const comments = `${article}/comments`;
    // Both instances' caches hold the article and its comments.
    for (const base of [a, b, a, b]) {
      expect((await directToContent(base, 'GET', article)).body.article.favoritesCount).toBe(0);
      expect((await directToContent(base, 'GET', comments)).body.comments).toEqual([]);
    }
    const stream = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, tokens.wren as string);
    streams.push(stream);
    expect(stream.status).toBe(200);
    const live = (type: string) =>
      stream.events
        .filter((e) => e.event === 'notification')
        .map((e) => JSON.parse(e.data))
        .filter((n) => n.type === type && n.article?.slug === slug);

    // A favorite through content A: read through B, live at the gateway.
    expect((await directToContent(a, 'POST', `${article}/favorite`, undefined, finch)).status).toBe(200);
    expect((await directToContent(b, 'GET', article)).body.article.favoritesCount).toBe(1);
    expect(await eventually(async () => live('favorite').length === 1, 10_000)).toBe(true);

    // A comment through content B: read through A, live at the gateway.
    const said = await directToContent(b, 'POST', comments, { comment: { body: 'from b' } }, finch);
    expect(said.status).toBe(201);
    expect((await directToContent(a, 'GET', comments)).body.comments.map((c: any) => c.body)).toEqual([
      'from b',
    ]);
    expect(await eventually(async () => live('comment').length === 1, 10_000)).toBe(true);

    // And the author's own edit through A is read through B.
    const edited = await directToContent(a, 'PUT', article, { article: { body: 'edited via a' } }, wren);
    expect(edited.status).toBe(200);
    expect((await directToContent(b, 'GET', article)).body.article.body).toBe('edited via a');
    expect(live('favorite')).toHaveLength(1);
    expect(live('comment')).toHaveLength(1);
  });

  it('logs no command over keys of several slots in any service', () => {
    expect(crossSlotErrors(stack)).toEqual([]);
  });
});
