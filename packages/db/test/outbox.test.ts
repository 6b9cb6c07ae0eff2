/**
 * The outbox relay on a real PostgreSQL, against a model: writes commit rows and kick the relay, as a
 * write service does after its commit, while deliveries are held in flight and let go in any order
 * with the writes. Whatever the order, once the relay is stopped every committed row has been delivered
 * exactly once and marked published, without the relay's poll (it is never started here): a kick alone
 * must bring each row out, also one that commits while a pass is running.
 */
import { type TestDatabase, testDatabase } from '@atoll/testkit';
import fc from 'fast-check';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, OutboxRelay } from '../src/index.ts';

type Step = 'write' | 'release' | 'yield';

describe('OutboxRelay', () => {
  let database: TestDatabase;
  let db: Kysely<any>;

  beforeAll(async () => {
    database = await testDatabase('outbox');
    db = createDb({ url: database.url, schema: 'relay' });
    await sql`create schema if not exists relay`.execute(db);
    await sql`create table relay.outbox (
      id bigserial primary key, body text not null, published_at timestamptz)`.execute(db);
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  it('delivers every row committed before a kick exactly once, in any order of writes and deliveries', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom<Step>('write', 'write', 'release', 'yield'), {
          minLength: 1,
          maxLength: 25,
          size: 'max',
        }),
        async (steps) => {
          await sql`truncate relay.outbox restart identity`.execute(db);
          const delivered: string[] = [];
          // Each delivery waits until a `release` step (or the end) lets it go.
          const held: Array<() => void> = [];
          let open = false;
          const relay = new OutboxRelay<{ body: string }>({
            db,
            table: 'outbox',
            columns: ['body'],
            deliverMany: async (rows) => {
              if (!open) await new Promise<void>((resolve) => held.push(resolve));
              delivered.push(...rows.map((r) => r.body));
            },
            log: { warn: () => undefined },
            batch: 3,
          });
          const written: string[] = [];
          for (const [i, step] of steps.entries()) {
            if (step === 'write') {
              await sql`insert into relay.outbox (body) values (${`row ${i}`})`.execute(db);
              written.push(`row ${i}`);
              relay.kick();
            } else if (step === 'release') {
              held.shift()?.();
            } else {
              await new Promise((resolve) => setTimeout(resolve, 2));
            }
          }
          open = true;
          for (const release of held.splice(0)) release();
          await relay.stop();
          expect(delivered.sort()).toEqual(written.sort());
          const { rows } = await sql<{
            pending: string;
          }>`select count(*) as pending from relay.outbox where published_at is null`.execute(db);
          expect(rows[0]?.pending).toBe('0');
        },
      ),
      { numRuns: 60 },
    );
  });
});
