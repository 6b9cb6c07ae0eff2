import { createDb } from '@atoll/db';
import { RedisServer } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { SCHEMA } from '../src/migrations/index.ts';
import { type ContentFixture, startContentApp } from './content-fixture.ts';

describe('content buildApp on real Redis and PostgreSQL', () => {
  let content: ContentFixture;
  beforeAll(async () => {
    content = await startContentApp('content');
  });
  afterAll(async () => {
    await content.close();
  });

  it('is ready when its Redis roles and its schema answer, and names what is down', async () => {
    expect((await content.app.inject({ url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      checks: { 'redis-cache': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
    await content.cache.stop();
    const down = await content.app.inject({ url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({
      status: 'unavailable',
      down: ['redis-cache'],
      checks: { 'redis-cache': 'down', 'redis-queue': 'up', postgres: 'up' },
    });
    await content.cache.restart();
  });

  it('keeps the profiles projection in its own schema, usernames unique regardless of case', async () => {
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    await db
      .insertInto('profiles')
      .values({ user_id: '00000000-0000-0000-0000-000000000001', username: 'Ada' })
      .execute();
    await expect(
      db
        .insertInto('profiles')
        .values({ user_id: '00000000-0000-0000-0000-000000000002', username: 'ADA' })
        .execute(),
    ).rejects.toThrow(/profiles_username_key/);
    await db.destroy();
  });

  it('refuses to build against a cache server without maxmemory', async () => {
    const unbounded = await RedisServer.start('cache', { args: ['--maxmemory', '0'] });
    try {
      await expect(buildApp(loadConfig({ ...content.env, REDIS_CACHE_URL: unbounded.url }))).rejects.toThrow(
        /redis-cache at .* maxmemory is 0 \(unbounded\)/,
      );
    } finally {
      await unbounded.dispose();
    }
  });
});
