/**
 * Comments through the cache, with two content instances (A, and B built beside it on the same Redis and
 * PostgreSQL): a warm page costs no SQL on either, a write on one instance is never hidden by the
 * other's cache (a new or deleted comment, a commenter's new profile, a deleted article), the viewer's
 * `following` flags stay their own, and adding a comment is one statement that also writes its
 * notification jobs.
 */
import { randomUUID } from 'node:crypto';
import { createDb, type Kysely, sql } from '@atoll/db';
import { publishUserEvent } from '@atoll/events';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { gatewayHeaders } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { SCHEMA } from '../src/migrations/index.ts';
import { type ContentFixture, startContentApp } from './content-fixture.ts';

const ADA = { userId: randomUUID(), username: 'ada', sessionId: 'a'.repeat(43), roles: ['user'] };
const BOB = { userId: randomUUID(), username: 'bob', sessionId: 'b'.repeat(43), roles: ['user'] };
const CAROL = { userId: randomUUID(), username: 'carol', sessionId: 'c'.repeat(43), roles: ['user'] };
type Viewer = typeof ADA | null;

/** Polls until `ok`; for what arrives asynchronously (a user event), never a timing assertion. */
async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('comments through the cache, on two instances', () => {
  let content: ContentFixture;
  let b: FastifyInstance;
  let db: Kysely<any>;
  let queue: RoleCheckedRedis;
  /** The statements every pg client of this process sent (the outbox relay's included). */
  const sent: string[] = [];
  const query = pg.Client.prototype.query;

  beforeAll(async () => {
    content = await startContentApp(
      'content-comments-cache',
      [ADA, BOB, CAROL].map((u) => ({ user_id: u.userId, username: u.username })),
    );
    b = await buildApp(loadConfig(content.env));
    await b.ready();
    db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    queue = await connectRedis({
      url: content.queue.url,
      role: 'queue',
      use: 'producer',
      name: 't',
      log: console,
    });
    pg.Client.prototype.query = function (this: object, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
      if (text) sent.push(text.replace(/\s+/g, ' ').trim());
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
  });
  afterAll(async () => {
    pg.Client.prototype.query = query;
    await b?.close();
    await db?.destroy();
    if (queue) await closeRedis(queue);
    await content?.close();
  });

  const A = () => content.app;
  const B = () => b;
  /** One request as the gateway would send it; with the statements it sent (the relay's left out). */
  const call = async (
    app: FastifyInstance,
    method: 'GET' | 'POST' | 'DELETE',
    url: string,
    viewer: Viewer = null,
    payload?: object,
  ) => {
    sent.length = 0;
    const res = await app.inject({
      method,
      url,
      ...(payload ? { payload } : {}),
      headers: gatewayHeaders(content.keys, 'content', {
        method,
        url,
        ...(viewer ? { identity: viewer } : {}),
      }),
    });
    const statements = sent.filter((s) => !/job_outbox/.test(s) || s.startsWith('with '));
    const ownWork = statements.filter((s) => s !== 'begin' && s !== 'commit');
    return { status: res.statusCode, body: res.body ? res.json() : null, queries: ownWork.length };
  };
  const comments = (app: FastifyInstance, slug: string, viewer: Viewer = null) =>
    call(app, 'GET', `/api/articles/${slug}/comments`, viewer);
  const article = async (title: string) =>
    (await call(A(), 'POST', '/api/articles', ADA, { article: { title, description: 'd', body: 'b' } })).body
      .article.slug as string;

  it('serves a warm page without SQL on either instance, and shows a write on the other at once', async () => {
    const slug = await article('Talked about');
    const added = await call(B(), 'POST', `/api/articles/${slug}/comments`, BOB, {
      comment: { body: 'first' },
    });
    expect(added.status).toBe(201);
    expect(added.body.comment).toMatchObject({
      body: 'first',
      author: { username: 'bob', following: false },
    });

    expect((await comments(A(), slug)).body.comments.map((c: any) => c.body)).toEqual(['first']);
    expect((await comments(A(), slug)).queries).toBe(0); // L1
    expect((await comments(B(), slug)).queries).toBe(0); // L2
    expect((await comments(B(), slug)).queries).toBe(0); // L1 on B too

    // Added on B, read on A (which has the page in L1): there.
    const second = await call(B(), 'POST', `/api/articles/${slug}/comments`, CAROL, {
      comment: { body: 'second' },
    });
    expect((await comments(A(), slug)).body.comments.map((c: any) => c.body)).toEqual(['first', 'second']);
    // A page other than the default one follows too.
    expect(
      (await call(A(), 'GET', `/api/articles/${slug}/comments?limit=1&offset=1`)).body.comments,
    ).toHaveLength(1);
    // Deleted on B: gone on A.
    const removed = await call(
      B(),
      'DELETE',
      `/api/articles/${slug}/comments/${second.body.comment.id}`,
      CAROL,
    );
    expect(removed.status).toBe(204);
    expect((await comments(A(), slug)).body.comments.map((c: any) => c.body)).toEqual(['first']);
    expect((await call(A(), 'GET', `/api/articles/${slug}/comments?limit=1&offset=1`)).body.comments).toEqual(
      [],
    );
  });

  it("adds each viewer's own following flags to the shared page", async () => {
    const slug = await article('Followed');
    await call(A(), 'POST', `/api/articles/${slug}/comments`, BOB, { comment: { body: 'hello' } });
    expect((await call(B(), 'POST', '/api/profiles/bob/follow', CAROL)).status).toBe(200);
    const following = async (viewer: Viewer) =>
      (await comments(A(), slug, viewer)).body.comments.map((c: any) => c.author.following);
    expect(await following(CAROL)).toEqual([true]);
    expect(await following(ADA)).toEqual([false]);
    expect(await following(null)).toEqual([false]);
    await call(B(), 'DELETE', '/api/profiles/bob/follow', CAROL);
    expect(await following(CAROL)).toEqual([false]);
  });

  it("shows a commenter's new profile, and answers 404 once the article is deleted", async () => {
    const slug = await article('Renamed');
    await call(A(), 'POST', `/api/articles/${slug}/comments`, CAROL, { comment: { body: 'hi' } });
    expect((await comments(B(), slug)).body.comments[0].author.bio).toBeNull();
    await publishUserEvent(queue, createKeys(loadConfig(content.env).keyPrefix), 'user.updated', {
      userId: CAROL.userId,
      username: 'carol',
      bio: 'writes back',
      image: null,
      email: 'carol@example.com',
      emailVerified: true,
      occurredAt: new Date().toISOString(),
    });
    const bioOn = async (app: FastifyInstance) => (await comments(app, slug)).body.comments[0].author.bio;
    expect(
      await until(
        () => bioOn(A()),
        (bio) => bio === 'writes back',
      ),
    ).toBe('writes back');
    expect(
      await until(
        () => bioOn(B()),
        (bio) => bio === 'writes back',
      ),
    ).toBe('writes back');

    expect((await call(B(), 'DELETE', `/api/articles/${slug}`, ADA)).status).toBe(204);
    const gone = await comments(A(), slug);
    expect(gone.status).toBe(404);
    expect(gone.body.code).toBe('NOT_FOUND');
    const late = await call(A(), 'POST', `/api/articles/${slug}/comments`, BOB, {
      comment: { body: 'late' },
    });
    expect(late.status).toBe(404);
  });

  it('keeps what it cached when a user event changes nothing readers see', async () => {
    const slug = await article('Unchanged');
    const read = (app: FastifyInstance) => call(app, 'GET', `/api/articles/${slug}`);
    expect((await read(A())).status).toBe(200);
    expect((await read(B())).queries).toBe(0); // L2, now in B's L1 too
    // A registration arriving after the first article (the row already has these values), then an
    // email change: both newer than the row, neither changes the public profile.
    const keys = createKeys(loadConfig(content.env).keyPrefix);
    const account = { userId: ADA.userId, username: 'ada', bio: null, image: null };
    const applied = async (occurredAt: string) =>
      until(
        async () =>
          (
            await db
              .selectFrom('profiles')
              .select('updated_at')
              .where('user_id', '=', ADA.userId)
              .executeTakeFirstOrThrow()
          ).updated_at.toISOString(),
        (at) => at === occurredAt,
      );
    const registeredAt = new Date().toISOString();
    await publishUserEvent(queue, keys, 'user.registered', {
      ...account,
      email: 'ada@example.com',
      emailVerified: false,
      occurredAt: registeredAt,
    });
    expect(await applied(registeredAt)).toBe(registeredAt);
    const changedAt = new Date(Date.now() + 1000).toISOString();
    await publishUserEvent(queue, keys, 'user.updated', {
      ...account,
      email: 'ada@example.org',
      emailVerified: true,
      occurredAt: changedAt,
    });
    expect(await applied(changedAt)).toBe(changedAt);
    // Both instances still answer from their L1, without SQL.
    for (const app of [A(), B()]) expect((await read(app)).queries).toBe(0);
    // A change readers see still reaches both.
    await publishUserEvent(queue, keys, 'user.updated', {
      ...account,
      bio: 'counts',
      email: 'ada@example.org',
      emailVerified: true,
      occurredAt: new Date(Date.now() + 2000).toISOString(),
    });
    for (const app of [A(), B()])
      expect(
        await until(
          async () => (await read(app)).body.article.author.bio,
          (bio) => bio === 'counts',
        ),
      ).toBe('counts');
  });

  it('adds a comment in one statement, its notification jobs in it (comment, mentions; never your own)', async () => {
    const slug = await article('Noticed');
    await comments(A(), slug); // the article is in the cache, as after any read of it
    const added = await call(A(), 'POST', `/api/articles/${slug}/comments`, BOB, {
      comment: { body: 'thanks @Carol and @bob and @nobody' },
    });
    expect(added.status).toBe(201);
    expect(added.queries).toBe(1);
    const jobs = await db
      .selectFrom('job_outbox')
      .select(['name', 'payload'])
      .where(sql`payload->>'commentId'`, '=', String(added.body.comment.id))
      .orderBy('id')
      .execute();
    expect(jobs.map((j) => [j.name, j.payload.recipientId])).toEqual([
      ['comment', ADA.userId],
      ['mention', CAROL.userId],
    ]);
    expect(jobs[0]?.payload).toMatchObject({
      v: 1,
      actorId: BOB.userId,
      actorUsername: 'bob',
      articleSlug: slug,
      articleTitle: 'Noticed',
      commentId: added.body.comment.id,
      excerpt: 'thanks @Carol and @bob and @nobody',
    });
    // Your own article, no mentions: nothing to notify.
    const own = await call(A(), 'POST', `/api/articles/${slug}/comments`, ADA, { comment: { body: 'mine' } });
    const ownJobs = await db
      .selectFrom('job_outbox')
      .select('id')
      .where(sql`payload->>'commentId'`, '=', String(own.body.comment.id))
      .execute();
    expect(ownJobs).toEqual([]);
    // An article's mentions: one job each, every one of them recorded.
    const mentioning = await call(A(), 'POST', '/api/articles', ADA, {
      article: { title: 'Mentions', description: 'd', body: 'with @bob and @carol' },
    });
    const articleJobs = await db
      .selectFrom('job_outbox')
      .select('payload')
      .where('name', '=', 'mention')
      .where(sql`payload->>'articleSlug'`, '=', mentioning.body.article.slug)
      .execute();
    expect(articleJobs.map((j) => j.payload.recipientId).sort()).toEqual([BOB.userId, CAROL.userId].sort());
    // A blank comment is a 422 and writes nothing.
    const blank = await call(A(), 'POST', `/api/articles/${slug}/comments`, BOB, {
      comment: { body: '   ' },
    });
    expect(blank.status).toBe(422);
    expect(blank.queries).toBe(0);
  });
});
