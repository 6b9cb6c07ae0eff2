/**
 * The storage side of fencing: a PostgreSQL table remembers, per lock, the largest fence that has
 * written. A write guarded by a lock runs `advanceFence` in the same transaction first; it succeeds only
 * if no larger fence has written before, so a holder whose lease expired unnoticed (and whose successor
 * has written since) cannot overwrite the successor's work. Equal fences pass: one holder may write
 * several times.
 *
 * The table (create it in the service's schema with a migration):
 *   create table lock_fences (name text primary key, fence bigint not null)
 */
import { type Kysely, sql } from 'kysely';

export const FENCE_TABLE = 'lock_fences';

/** True when `fence` may write (and is now recorded); false when a later holder has written already. */
// biome-ignore lint/suspicious/noExplicitAny: works on any service's schema, through raw SQL
export async function advanceFence(db: Kysely<any>, name: string, fence: number): Promise<boolean> {
  const { rows } = await sql<{ fence: string }>`
    insert into ${sql.table(FENCE_TABLE)} (name, fence) values (${name}, ${fence})
    on conflict (name) do update set fence = excluded.fence
    where ${sql.table(FENCE_TABLE)}.fence <= excluded.fence
    returning fence`.execute(db);
  return rows.length === 1;
}
