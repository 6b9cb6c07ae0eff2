import { createDb, migrateDatabase } from '@atoll/db';
import { identityKeyPair, RedisServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

describe('content buildApp on real Redis and PostgreSQL', () => {
  const keys = identityKeyPair();
  let cache: RedisServer;
  let queue: RedisServer;
  let database: TestDatabase;
  let app: FastifyInstance;
  const env = () => ({
    LOG_LEVEL: 'silent',
    IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
    DATABASE_URL: database.url,
    REDIS_CACHE_URL: cache.url,
    REDIS_QUEUE_URL: queue.url,
    AUTH_URL: 'http://127.0.0.1:9',
    AUTH_INTERNAL_TOKEN: 'i'.repeat(40),
  });

  beforeAll(async () => {
    [cache, queue, database] = await Promise.all([
      RedisServer.start('cache'),
      RedisServer.start('queue'),
      testDatabase('content'),
    ]);
    await migrateDatabase(database.url, SCHEMA, migrations);
    app = await buildApp(loadConfig(env()));
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([cache.dispose(), queue.dispose(), database.drop()]);
  });

  it('is ready when its Redis roles and its schema answer, and names what is down', async () => {
    expect((await app.inject({ url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      checks: { 'redis-cache': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
    await cache.stop();
    const down = await app.inject({ url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({
      status: 'unavailable',
      down: ['redis-cache'],
      checks: { 'redis-cache': 'down', 'redis-queue': 'up', postgres: 'up' },
    });
    await cache.restart();
  });

  it('keeps the profiles projection in its own schema, usernames unique regardless of case', async () => {
    const db = createDb<any>({ url: database.url, schema: SCHEMA });
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
      await expect(buildApp(loadConfig({ ...env(), REDIS_CACHE_URL: unbounded.url }))).rejects.toThrow(
        /redis-cache at .* maxmemory is 0 \(unbounded\)/,
      );
    } finally {
      await unbounded.dispose();
    }
  });
});
