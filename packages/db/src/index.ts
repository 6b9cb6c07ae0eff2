/**
 * PostgreSQL for atoll: one Kysely instance per service, bound to the service's own schema through the
 * connection's `search_path`, and the migration runner every service uses.
 *
 * Migrations are frozen: each file is named by its UTC timestamp, exports `up`/`down` taking
 * `Kysely<any>`, and imports nothing from app code. A service lists its migrations in
 * `src/migrations/index.ts`, so the same code runs from TypeScript sources and from the built image.
 */
import { Kysely, PostgresDialect, sql } from 'kysely';
import { type Migration, type MigrationResultSet, Migrator } from 'kysely/migration';
import pg from 'pg';

export { isDatabaseUnavailable } from './unavailable.ts';

export interface DbOptions {
  url: string;
  /** The service's schema; also where its migration bookkeeping lives. */
  schema: string;
  poolSize?: number;
  /** Statement timeout in ms: a slow query fails instead of holding a request forever. */
  statementTimeoutMs?: number;
  /**
   * How long a query waits for a connection (a free one of the pool, or a new one to be opened) before it
   * fails as "database unavailable", in ms (default 5000). A stopped server refuses at once whatever this
   * is; it bounds the wait for one that does not answer. Opening a connection (TCP, SCRAM) to a busy
   * server in a container took over 2 s, which turned writes held behind a lock into 503s.
   */
  connectTimeoutMs?: number;
  /** Called after every query with its duration (ms), e.g. to count queries per request. */
  onQuery?: (durationMs: number) => void;
}

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;

export function createDb<DB>(opts: DbOptions): Kysely<DB> {
  if (!SCHEMA_PATTERN.test(opts.schema)) throw new TypeError(`invalid schema name ${opts.schema}`);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    options: `-c search_path=${opts.schema},public -c statement_timeout=${opts.statementTimeoutMs ?? 5000}`,
  });
  // An idle client losing its connection must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // Nor may a checked-out one: pg-pool drops its own listener while a client is lent out, and a client
  // that loses its connection between two queries (a transaction awaiting Redis, say) emits 'error'.
  // Without a listener that is an uncaught exception; with one, the next query on it fails instead, the
  // transaction rejects, and the broken client is discarded when it is released.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const onQuery = opts.onQuery;
  return new Kysely<DB>({
    dialect: new PostgresDialect({ pool }),
    ...(onQuery
      ? { log: (event: { queryDurationMillis: number }) => onQuery(event.queryDurationMillis) }
      : {}),
  });
}

/** Creates the schema if needed and applies every pending migration, in name order. */
export async function migrateToLatest(
  db: Kysely<unknown>,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<MigrationResultSet> {
  if (!SCHEMA_PATTERN.test(schema)) throw new TypeError(`invalid schema name ${schema}`);
  // Only when missing: `create schema if not exists` asks for CREATE on the database even when the schema
  // exists, a right the migration role (the schema's owner, nothing more) does not have.
  const { rows } = await sql`select 1 from pg_namespace where nspname = ${schema}`.execute(db);
  if (rows.length === 0) await sql`create schema ${sql.id(schema)}`.execute(db);
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableSchema: schema,
  });
  return migrator.migrateToLatest();
}

/** Opens a short-lived connection to `url`, migrates `schema` to the latest, and throws on failure. */
export async function migrateDatabase(
  url: string,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<void> {
  const db = createDb<unknown>({ url, schema, poolSize: 1 });
  try {
    const { error } = await migrateToLatest(db, schema, migrations);
    if (error) throw error instanceof Error ? error : new Error(String(error));
  } finally {
    await db.destroy();
  }
}

/**
 * The migrate command of a service: applies its migrations, prints one line per migration, and exits
 * non-zero (with the reason) when any fails or the database cannot be reached.
 */
export async function runMigrateCommand(
  url: string | undefined,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<number> {
  if (!url) {
    console.error(
      'DATABASE_URL is missing: a PostgreSQL URL, e.g. postgres://user:pass@127.0.0.1:5432/atoll',
    );
    return 1;
  }
  const db = createDb<unknown>({ url, schema, poolSize: 1 });
  try {
    const { error, results } = await migrateToLatest(db, schema, migrations);
    for (const r of results ?? []) console.log(`${schema}: ${r.migrationName} ${r.status.toLowerCase()}`);
    if (error) {
      console.error(`${schema}: migration failed: ${error instanceof Error ? error.message : String(error)}`);
      return 1;
    }
    if ((results ?? []).length === 0) console.log(`${schema}: up to date`);
    return 0;
  } catch (err) {
    console.error(`${schema}: migration failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await db.destroy();
  }
}

/** True when PostgreSQL answers `select 1` within `timeoutMs`; never throws, never hangs. */
export async function pingDb(db: Kysely<unknown>, timeoutMs = 1000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      sql`select 1`.execute(db),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
      }),
    ]);
    return true;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export { OutboxRelay, type OutboxRelayOptions, type RelayLog } from './outbox.ts';
export { type Kysely, type Migration, sql };
