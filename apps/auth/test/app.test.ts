import { createDb, migrateDatabase } from '@atoll/db';
import {
  gatewayHeaders,
  identityKeyPair,
  RedisServer,
  type TestDatabase,
  testDatabase,
} from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

const keys = identityKeyPair();
const INTERNAL_TOKEN = 'i'.repeat(40);

describe('auth buildApp on real Redis and PostgreSQL', () => {
  let session: RedisServer;
  let queue: RedisServer;
  let database: TestDatabase;
  let app: FastifyInstance;

  beforeAll(async () => {
    [session, queue, database] = await Promise.all([
      RedisServer.start('session'),
      RedisServer.start('queue'),
      testDatabase('auth'),
    ]);
    await migrateDatabase(database.url, SCHEMA, migrations);
    app = await buildApp(
      loadConfig({
        LOG_LEVEL: 'silent',
        IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
        DATABASE_URL: database.url,
        REDIS_SESSION_URL: session.url,
        REDIS_QUEUE_URL: queue.url,
        INTERNAL_TOKEN,
      }),
    );
  });
  afterAll(async () => {
    await app.close();
    await Promise.all([session.dispose(), queue.dispose(), database.drop()]);
  });

  it('is ready when its Redis roles and its schema answer', async () => {
    const res = await app.inject({ url: '/health/ready' });
    expect(res.json()).toEqual({
      status: 'ready',
      checks: { 'redis-session': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
  });

  it('tells the caller their session from the gateway assertion, 401 without one', async () => {
    const identity = { userId: 'u1', username: 'ada', sessionId: 's1', roles: ['user'] };
    const res = await app.inject({
      url: '/api/auth/session',
      headers: gatewayHeaders(keys, 'auth', { url: '/api/auth/session', identity }),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ session: { id: 's1', userId: 'u1', username: 'ada', roles: ['user'] } });
    const anonymous = await app.inject({
      url: '/api/auth/session',
      headers: gatewayHeaders(keys, 'auth', { url: '/api/auth/session' }),
    });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
    const direct = await app.inject({ url: '/api/auth/session' });
    expect(direct.statusCode).toBe(401);
    expect(direct.json()).toEqual({ errors: { identity: ['is missing'] }, code: 'IDENTITY_MISSING' });
  });

  it('serves /internal/profiles/:username only to the internal token, never to an identity assertion', async () => {
    const url = '/internal/profiles/nobody-here';
    const refused = {
      errors: { internal: ['need the internal bearer token'] },
      code: 'INTERNAL_UNAUTHORIZED',
    };
    for (const headers of [
      {},
      { authorization: `Bearer ${'x'.repeat(40)}` },
      { authorization: INTERNAL_TOKEN },
      gatewayHeaders(keys, 'auth', { url }),
    ]) {
      const res = await app.inject({ url, headers });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual(refused);
    }
    const asked = await app.inject({ url, headers: { authorization: `Bearer ${INTERNAL_TOKEN}` } });
    expect(asked.statusCode).toBe(404);
    expect(asked.json()).toMatchObject({ errors: { profile: ['not found'] } });
  });

  it('created the users table with case-insensitive unique usernames and emails', async () => {
    const db = createDb<any>({ url: database.url, schema: SCHEMA });
    await db.insertInto('users').values({ username: 'Ada', email: 'ada@example.com' }).execute();
    await expect(
      db.insertInto('users').values({ username: 'ada', email: 'x@example.com' }).execute(),
    ).rejects.toThrow(/users_username_key/);
    await expect(
      db.insertInto('users').values({ username: 'b', email: 'ADA@example.com' }).execute(),
    ).rejects.toThrow(/users_email_key/);
    await db.destroy();
  });

  it('refuses to build against a queue server that evicts', async () => {
    const cache = await RedisServer.start('cache');
    try {
      await expect(
        buildApp(
          loadConfig({
            LOG_LEVEL: 'silent',
            IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
            DATABASE_URL: database.url,
            REDIS_SESSION_URL: session.url,
            REDIS_QUEUE_URL: cache.url,
          }),
        ),
      ).rejects.toThrow(/redis-queue at .* is not configured for the queue role/);
    } finally {
      await cache.dispose();
    }
  });
});
