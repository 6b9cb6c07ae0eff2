/**
 * What the services keep in PostgreSQL, as one comparable value: per table of the auth, content and
 * notifier schemas, its row count and the md5 of its rows in a fixed order. Two equal states mean no row
 * was added, removed or changed; one query reads them all.
 */
import type pg from 'pg';

export type DbState = Record<string, string>;

const SCHEMAS = ['auth', 'content', 'notifier'];

/** Reads the state of every table of the services' schemas (the table list is read once per client). */
export function dbState(db: pg.Client): () => Promise<DbState> {
  let query: string | undefined;
  return async () => {
    if (query === undefined) {
      const { rows } = await db.query<{ name: string }>(
        `SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) AS name
           FROM information_schema.tables
          WHERE table_schema = ANY($1) AND table_type = 'BASE TABLE'
          ORDER BY 1`,
        [SCHEMAS],
      );
      query = rows
        .map(
          ({ name }) =>
            `SELECT '${name}' AS name, count(*) || ':' || ` +
            `coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS state FROM ${name} t`,
        )
        .join(' UNION ALL ');
    }
    const { rows } = await db.query<{ name: string; state: string }>(query);
    return Object.fromEntries(rows.map((r) => [r.name, r.state]));
  };
}

/** The tables whose state differs between two reads, with both states. */
export function changedTables(before: DbState, after: DbState): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  return [...names].filter((n) => before[n] !== after[n]).map((n) => `${n}: ${before[n]} -> ${after[n]}`);
}

/**
 * Waits until the state stops changing: the same for `quietMs` (background work such as the outbox
 * relay, the notification fan-out and the emails it sends has settled), or until the time is up.
 */
export async function settledState(
  read: () => Promise<DbState>,
  { quietMs = 750, timeoutMs = 15_000 } = {},
): Promise<DbState> {
  const deadline = Date.now() + timeoutMs;
  let last = await read();
  let quietSince = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 150));
    const next = await read();
    if (changedTables(last, next).length > 0) quietSince = Date.now();
    else if (Date.now() - quietSince >= quietMs) return next;
    if (Date.now() > deadline) return next;
    last = next;
  }
}
