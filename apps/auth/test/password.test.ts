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
import { PasswordHasher } from '../src/users/password.ts';

describe('PasswordHasher', () => {
  const hasher = new PasswordHasher(15);

  it('stores the cost with the hash and verifies only the right password', async () => {
    const stored = await hasher.hash('correct horse');
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
    expect(await hasher.verify('correct horse', stored)).toEqual({ valid: true, outdated: false });
    expect(await hasher.verify('wrong horse', stored)).toEqual({ valid: false, outdated: false });
    expect(await hasher.verify('correct horse', null)).toEqual({ valid: false, outdated: false });
  });

  it('refuses stored costs out of bounds instead of computing them, and configured costs below 2^15', async () => {
    const stored = await hasher.hash('correct horse');
    for (const n of ['2097152', '1000', '0', 'x']) {
      const bad = stored.replace('$32768$', `$${n}$`);
      expect(await hasher.verify('correct horse', bad), n).toEqual({ valid: false, outdated: false });
    }
    expect(() => new PasswordHasher(14)).toThrow(RangeError);
    expect(() => new PasswordHasher(21)).toThrow(RangeError);
  });
});

describe('a login replaces a hash made at a lower cost (buildApp on real Redis and PostgreSQL)', () => {
  let session: RedisServer;
  let queue: RedisServer;
  let database: TestDatabase;
  let app: FastifyInstance;
  let db: ReturnType<typeof createDb<any>>;

  const keys = identityKeyPair();
  beforeAll(async () => {
    [session, queue, database] = await Promise.all([
      RedisServer.start('session'),
      RedisServer.start('queue'),
      testDatabase('auth-password'),
    ]);
    await migrateDatabase(database.url, SCHEMA, migrations);
    db = createDb<any>({ url: database.url, schema: SCHEMA });
    app = await buildApp(
      loadConfig({
        LOG_LEVEL: 'silent',
        IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
        DATABASE_URL: database.url,
        REDIS_SESSION_URL: session.url,
        REDIS_QUEUE_URL: queue.url,
        PASSWORD_SCRYPT_LOG2_N: '16',
      }),
    );
  }, 60_000);
  afterAll(async () => {
    await app?.close();
    await db?.destroy();
    await Promise.all([session?.dispose(), queue?.dispose(), database?.drop()]);
  });

  const storedHash = async () =>
    (
      await db
        .selectFrom('users')
        .select('password_hash')
        .where('username', '=', 'old')
        .executeTakeFirstOrThrow()
    ).password_hash as string;
  const login = (password: string) =>
    app.inject({
      method: 'POST',
      url: '/api/users/login',
      headers: gatewayHeaders(keys, 'auth', { method: 'POST', url: '/api/users/login' }),
      payload: { user: { email: 'old@example.com', password } },
    });

  it('rehashes an N=2^15 hash to the configured 2^16 on the next right password, and only then', async () => {
    const old = await new PasswordHasher(15).hash('correct horse');
    await db
      .insertInto('users')
      .values({ username: 'old', email: 'old@example.com', password_hash: old })
      .execute();

    expect((await login('wrong horse')).statusCode).toBe(401);
    expect(await storedHash()).toBe(old);

    expect((await login('correct horse')).statusCode).toBe(200);
    const rehashed = await storedHash();
    expect(rehashed).toMatch(/^scrypt\$65536\$8\$1\$/);

    // The new hash holds the same password; it is at today's cost, so it stays.
    expect((await login('correct horse')).statusCode).toBe(200);
    expect(await storedHash()).toBe(rehashed);
  }, 60_000);

  it('hashes new passwords at the configured cost', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/users',
      headers: gatewayHeaders(keys, 'auth', { method: 'POST', url: '/api/users' }),
      payload: { user: { username: 'new', email: 'new@example.com', password: 'correct horse' } },
    });
    expect(res.statusCode).toBe(201);
    const row = await db
      .selectFrom('users')
      .select('password_hash')
      .where('username', '=', 'new')
      .executeTakeFirstOrThrow();
    expect(row.password_hash).toMatch(/^scrypt\$65536\$8\$1\$/);
  }, 60_000);
});
