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
import { legacyScryptHash, PasswordHasher } from '../src/users/password.ts';

const LOW = { memoryKiB: 19_456, iterations: 2 };
const HIGHER = { memoryKiB: 24_576, iterations: 2 };

describe('PasswordHasher', () => {
  const hasher = new PasswordHasher(LOW);

  it('stores Argon2id with its cost as a PHC string and verifies only the right password', async () => {
    const stored = await hasher.hash('correct horse');
    expect(stored).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    expect(await hasher.verify('correct horse', stored)).toEqual({ valid: true, outdated: false });
    expect(await hasher.verify('wrong horse', stored)).toEqual({ valid: false, outdated: false });
    expect(await hasher.verify('correct horse', null)).toEqual({ valid: false, outdated: false });
  });

  it('verifies the scrypt hashes of earlier versions and calls them outdated; a lower Argon2id cost too', async () => {
    const old = await legacyScryptHash('correct horse', 15);
    expect(await hasher.verify('correct horse', old)).toEqual({ valid: true, outdated: true });
    expect(await hasher.verify('wrong horse', old)).toEqual({ valid: false, outdated: false });
    const stronger = new PasswordHasher(HIGHER);
    expect(await stronger.verify('correct horse', await hasher.hash('correct horse'))).toEqual({
      valid: true,
      outdated: true,
    });
  });

  it('refuses stored costs out of bounds instead of computing them, and configured costs below OWASP minimum', async () => {
    const stored = await hasher.hash('correct horse');
    for (const m of ['m=2097152', 'm=1', 'm=x']) {
      const bad = stored.replace('m=19456', m);
      expect(await hasher.verify('correct horse', bad), m).toEqual({ valid: false, outdated: false });
    }
    expect(await hasher.verify('correct horse', stored.replace('t=2', 't=99'))).toEqual({
      valid: false,
      outdated: false,
    });
    const scrypt = await legacyScryptHash('correct horse', 15);
    expect(await hasher.verify('correct horse', scrypt.replace('$32768$', '$2097152$'))).toEqual({
      valid: false,
      outdated: false,
    });
    expect(() => new PasswordHasher({ memoryKiB: 19_455, iterations: 2 })).toThrow(RangeError);
    expect(() => new PasswordHasher({ memoryKiB: 65_536, iterations: 1 })).toThrow(RangeError);
  });
});

describe('a login replaces a scrypt hash, or one made at a lower cost (buildApp on real Redis and PostgreSQL)', () => {
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
        PASSWORD_ARGON2_MEMORY_KIB: String(HIGHER.memoryKiB),
        PASSWORD_ARGON2_ITERATIONS: String(HIGHER.iterations),
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

  it('rehashes a scrypt hash to Argon2id at the configured cost on the next right password, and only then', async () => {
    const old = await legacyScryptHash('correct horse', 15);
    await db
      .insertInto('users')
      .values({ username: 'old', email: 'old@example.com', password_hash: old })
      .execute();

    expect((await login('wrong horse')).statusCode).toBe(401);
    expect(await storedHash()).toBe(old);

    expect((await login('correct horse')).statusCode).toBe(200);
    const rehashed = await storedHash();
    expect(rehashed).toMatch(/^\$argon2id\$v=19\$m=24576,t=2,p=1\$/);

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
    expect(row.password_hash).toMatch(/^\$argon2id\$v=19\$m=24576,t=2,p=1\$/);
  }, 60_000);
});
