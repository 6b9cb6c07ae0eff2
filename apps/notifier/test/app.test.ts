import { randomBytes } from 'node:crypto';
import { migrateDatabase } from '@atoll/db';
import { RedisServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

describe('notifier buildApp on real Redis and PostgreSQL', () => {
  let queue: RedisServer;
  let database: TestDatabase;
  let app: FastifyInstance;

  beforeAll(async () => {
    [queue, database] = await Promise.all([RedisServer.start('queue'), testDatabase('notifier')]);
    await migrateDatabase(database.url, SCHEMA, migrations);
    app = await buildApp(
      loadConfig({
        LOG_LEVEL: 'silent',
        IDENTITY_SECRET: randomBytes(32).toString('hex'),
        DATABASE_URL: database.url,
        REDIS_QUEUE_URL: queue.url,
      }),
    );
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([queue.dispose(), database.drop()]);
  });

  it('is ready when redis-queue and its schema answer; 503 naming postgres when the database is gone', async () => {
    expect((await app.inject({ url: '/health/ready' })).json()).toEqual({
      status: 'ready',
      checks: { 'redis-queue': 'up', postgres: 'up' },
    });
    await database.drop();
    const down = await app.inject({ url: '/health/ready' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ down: ['postgres'] });
  });

  it('answers unknown routes with 404 in the RealWorld shape', async () => {
    const res = await app.inject({ url: '/api/nothing-here' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ errors: { route: ['not found'] }, code: 'NOT_FOUND' });
  });
});
