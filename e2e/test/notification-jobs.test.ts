/**
 * Favorites, follows, comments and @mentions become jobs of the notifications queue for the notifier:
 * one valid job per cause, none for your own doing, and none lost while redis-queue is down.
 */
import { payloadProblem } from '@atoll/jobs';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit';
import { type Job, Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, startTestStack } from './helpers.ts';

describe('notification jobs from content', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let queueRedis: RoleCheckedRedis;
  let queue: Queue;
  const users: Record<string, { token: string; id: string }> = {};

  const jobs = async (): Promise<Job[]> => queue.getJobs(['waiting', 'delayed', 'prioritized', 'active']);
  const jobsFor = async (name: string, recipient: string) =>
    (await jobs()).filter((j) => j.name === name && j.data.recipientId === users[recipient]?.id);

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('notify'));
    api = apiClient(stack.gatewayUrl);
    queueRedis = await redisOf(stack, 'queue', 'worker');
    queue = new Queue('notifications', {
      connection: queueRedis,
      prefix: createKeys(stack.envOf('content').REDIS_KEY_PREFIX as string).bullPrefix(),
    });
    for (const name of ['amy', 'ben', 'cat']) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email: `${name}@example.com`, password: 'correct horse' } },
      });
      const token = res.body.user.token as string;
      const id = (await api('GET', '/api/auth/session', { token })).body.session.userId as string;
      users[name] = { token, id };
      // Mentions resolve usernames through content's profiles, kept from the user events.
      await eventually(async () => (await api('GET', `/api/profiles/${name}`)).status === 200);
    }
  }, 90_000);
  afterAll(async () => {
    await queue.close();
    await closeRedis(queueRedis);
    await dispose();
  });

  it('a follow, a favorite, a comment and a mention each enqueue one valid job; your own do not', async () => {
    const post = await api('POST', '/api/articles', {
      token: users.amy?.token,
      body: {
        article: { title: 'Notify me', description: 'd', body: 'Thanks @ben for the idea', tagList: [] },
      },
    });
    const slug = post.body.article.slug as string;
    await api('POST', '/api/profiles/amy/follow', { token: users.ben?.token });
    await api('POST', '/api/profiles/amy/follow', { token: users.ben?.token }); // again: no second job
    await api('POST', `/api/articles/${slug}/favorite`, { token: users.cat?.token });
    await api('POST', `/api/articles/${slug}/favorite`, { token: users.amy?.token }); // own article
    await api('POST', `/api/articles/${slug}/comments`, {
      token: users.ben?.token,
      body: { comment: { body: 'Nice! cc @cat @nobody' } },
    });

    expect(await eventually(async () => (await jobs()).length >= 5)).toBe(true);
    const all = await jobs();
    for (const job of all) expect(payloadProblem('notifications', job.name, job.data), job.name).toBeNull();
    expect((await jobsFor('follow', 'amy')).map((j) => j.data.actorUsername)).toEqual(['ben']);
    expect((await jobsFor('favorite', 'amy')).map((j) => j.data.actorUsername)).toEqual(['cat']);
    expect((await jobsFor('comment', 'amy'))[0]?.data).toMatchObject({
      actorUsername: 'ben',
      articleSlug: slug,
      excerpt: 'Nice! cc @cat @nobody',
    });
    expect((await jobsFor('mention', 'ben'))[0]?.data).toMatchObject({
      actorUsername: 'amy',
      commentId: null,
    });
    expect((await jobsFor('mention', 'cat'))[0]?.data).toMatchObject({
      actorUsername: 'ben',
      commentId: expect.any(Number),
    });
    expect(all.filter((j) => j.data.recipientId === j.data.actorId)).toEqual([]);
    expect(all).toHaveLength(5);
  });

  it('keeps the write and delivers the job later when redis-queue is down', async () => {
    const post = await api('POST', '/api/articles', {
      token: users.cat?.token,
      body: { article: { title: 'While down', description: 'd', body: 'b' } },
    });
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
    expect(await eventually(async () => (await jobsFor('favorite', 'cat')).length === 1, 15_000)).toBe(true);
  });
});
