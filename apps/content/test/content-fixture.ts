/**
 * A content app for tests that inject: real Redis (cache and queue) on free ports, a fresh database with
 * content's migrations and the given profiles, and `buildApp` on them, as `main.ts` would build it.
 */
import { createDb, migrateDatabase } from '@atoll/db';
import {
  type IdentityKeys,
  identityKeyPair,
  RedisServer,
  type TestDatabase,
  testDatabase,
} from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { migrations, SCHEMA } from '../src/migrations/index.ts';

export interface ContentFixture {
  app: FastifyInstance;
  /** The gateway's identity keys the app trusts (to sign requests with `gatewayHeaders`). */
  keys: IdentityKeys;
  cache: RedisServer;
  queue: RedisServer;
  database: TestDatabase;
  /** The environment the app was configured from, to build another one beside it. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export async function startContentApp(
  name: string,
  profiles: Array<{ user_id: string; username: string }> = [],
): Promise<ContentFixture> {
  const keys = identityKeyPair();
  const [cache, queue, database] = await Promise.all([
    RedisServer.start('cache'),
    RedisServer.start('queue'),
    testDatabase(name),
  ]);
  await migrateDatabase(database.url, SCHEMA, migrations);
  if (profiles.length) {
    const db = createDb<any>({ url: database.url, schema: SCHEMA });
    await db.insertInto('profiles').values(profiles).execute();
    await db.destroy();
  }
  const env = {
    LOG_LEVEL: 'silent',
    IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
    DATABASE_URL: database.url,
    REDIS_CACHE_URL: cache.url,
    REDIS_QUEUE_URL: queue.url,
    AUTH_URL: 'http://127.0.0.1:9',
    AUTH_INTERNAL_TOKEN: 'i'.repeat(40),
  };
  const app = await buildApp(loadConfig(env));
  await app.ready();
  return {
    app,
    keys,
    cache,
    queue,
    database,
    env,
    close: async () => {
      await app.close();
      await Promise.all([cache.dispose(), queue.dispose(), database.drop()]);
    },
  };
}
