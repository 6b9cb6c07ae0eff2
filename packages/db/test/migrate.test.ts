import { type TestDatabase, testDatabase } from '@atoll/testkit';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, migrateToLatest, pingDb, runMigrateCommand } from '../src/index.ts';

const migrations = {
  '2026-11-22T00-00_create_things': {
    up: async (db: Kysely<any>) => {
      await db.schema
        .createTable('things')
        .addColumn('id', 'serial', (c) => c.primaryKey())
        .execute();
    },
  },
  '2026-11-22T00-01_add_name': {
    up: async (db: Kysely<any>) => {
      await db.schema.alterTable('things').addColumn('name', 'text').execute();
    },
  },
};

describe('migrations on a real PostgreSQL database', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await testDatabase('db');
  });
  afterAll(async () => {
    await database.drop();
  });

  it('creates the schema, applies migrations in order, and is idempotent', async () => {
    const db = createDb<any>({ url: database.url, schema: 'svc' });
    const first = await migrateToLatest(db, 'svc', migrations);
    expect(first.error).toBeUndefined();
    expect(first.results?.map((r) => r.status)).toEqual(['Success', 'Success']);
    const again = await migrateToLatest(db, 'svc', migrations);
    expect(again.results).toEqual([]);
    await db.insertInto('things').values({ name: 'x' }).execute();
    const { rows } = await sql<{ n: string }>`select count(*) as n from svc.things`.execute(db);
    expect(rows[0]?.n).toBe('1');
    const tables = await sql<{ table_name: string }>`
      select table_name from information_schema.tables where table_schema = 'svc' order by table_name`.execute(
      db,
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual([
      'kysely_migration',
      'kysely_migration_lock',
      'things',
    ]);
    expect(await pingDb(db)).toBe(true);
    await db.destroy();
  });

  it('the migrate command exits non-zero when a migration fails, and keeps earlier ones', async () => {
    const broken = {
      ...migrations,
      '2026-11-22T00-02_broken': {
        up: async (db: Kysely<any>) => void (await sql`select * from missing`.execute(db)),
      },
    };
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(line);
    try {
      expect(await runMigrateCommand(database.url, 'svc2', broken)).toBe(1);
    } finally {
      console.error = original;
    }
    expect(errors.join('\n')).toMatch(/svc2: migration failed: relation "missing" does not exist/);
  });

  it('the migrate command exits non-zero when the database is unreachable or unset', async () => {
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(line);
    try {
      expect(await runMigrateCommand('postgres://nobody@127.0.0.1:1/none', 'svc', migrations)).toBe(1);
      expect(await runMigrateCommand(undefined, 'svc', migrations)).toBe(1);
    } finally {
      console.error = original;
    }
    expect(errors[0]).toMatch(/^svc: migration failed: /);
    expect(errors[1]).toMatch(/^DATABASE_URL is missing/);
  });

  it('survives a connection lost inside a transaction while it waits for something else', async () => {
    const db = createDb<any>({ url: database.url, schema: 'lost' });
    const admin = createDb<any>({ url: database.url, schema: 'lost' });
    try {
      const outcome = db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
        // The connection is lent out and idle in the transaction (as while an outbox batch goes to Redis)
        // when the server ends it.
        await sql`select pg_terminate_backend(${rows[0]?.pid})`.execute(admin);
        await new Promise((r) => setTimeout(r, 200));
        await sql`select 1`.execute(trx);
      });
      await expect(outcome).rejects.toThrow();
      // The process is still here (no uncaught 'error' event), and the pool serves new queries.
      expect(await pingDb(db)).toBe(true);
    } finally {
      await db.destroy();
      await admin.destroy();
    }
  });
});
