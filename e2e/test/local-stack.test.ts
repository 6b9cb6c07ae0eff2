/**
 * The local stack command, as a developer runs it: `npm start` in a clean copy of the repository (no
 * node_modules, no data), the gateway answers, Ctrl-C stops everything, and a second start reuses the
 * data of the first (PostgreSQL cluster, migrations, Redis snapshots) and passes the settings in its
 * environment to the services (here the gateway's CORS_ORIGINS, RATE_LIMIT_ANONYMOUS_MAX and
 * TRUSTED_PROXIES), which the first start, without them, shows are not the defaults.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { freePort, ownedTempDir, ownProcess, removeOwnedDir, repoRoot } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const silent = { info() {}, warn() {}, error() {} };

/** A copy of the working tree as a clone would have it: tracked and new files, nothing ignored. */
function cleanCopy(target: string) {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: repoRoot })
    .toString()
    .split('\0')
    .filter(Boolean);
  for (const file of files) {
    mkdirSync(dirname(join(target, file)), { recursive: true });
    try {
      copyFileSync(join(repoRoot, file), join(target, file));
    } catch {
      // listed but deleted in the working tree
    }
  }
}

/** `npm start` in its own process group, so Ctrl-C can go to the whole group as a terminal sends it. */
class NpmStart {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;
  /** Its output pipes closed: everything it and the processes behind it wrote has been read. */
  private readonly closed: Promise<void>;
  constructor(cwd: string, env: NodeJS.ProcessEnv) {
    this.child = spawn('npm', ['start'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    ownProcess(this.child);
    this.child.stdout?.on('data', (c: Buffer) => (this.output += c.toString()));
    this.child.stderr?.on('data', (c: Buffer) => (this.output += c.toString()));
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.closed = new Promise((resolve) => this.child.once('close', () => resolve()));
  }
  async waitFor(pattern: RegExp, timeoutMs = 120_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = this.output.match(pattern);
      if (match) return match;
      if (this.child.exitCode !== null) {
        // It exited; its last lines may still be in the pipe (a child's 'exit' can come before them).
        await Promise.race([this.closed, new Promise((r) => setTimeout(r, 5_000))]);
        const late = this.output.match(pattern);
        if (late) return late;
      }
      if (this.child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no ${pattern} in:\n${this.output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  /**
   * Waits for the stack to report a clean stop. npm itself dies of the SIGINT (as in a terminal); the
   * stack process behind it exits 0, which is what prints the line.
   */
  async stopped(): Promise<void> {
    await this.waitFor(/atoll: stopped/, 30_000);
    await this.exited;
    expect(this.output).not.toMatch(/exited \(|could not start/);
  }
  /** Ctrl-C: SIGINT to the whole process group. */
  interrupt() {
    if (this.child.pid) process.kill(-this.child.pid, 'SIGINT');
  }
}

const FRONTEND = 'http://localhost:4200';
/** The second start's settings: what a frontend developer on another origin, behind a proxy, would set. */
const SETTINGS = { CORS_ORIGINS: FRONTEND, RATE_LIMIT_ANONYMOUS_MAX: '3', TRUSTED_PROXIES: '127.0.0.1' };

/** A browser's CORS preflight for a POST to /api/articles from a page on `origin`. */
async function preflight(gatewayUrl: string, origin: string) {
  const res = await fetch(`${gatewayUrl}/api/articles`, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': 'POST' },
  });
  await res.arrayBuffer();
  return { status: res.status, allowOrigin: res.headers.get('access-control-allow-origin') };
}

/** An anonymous read as a proxy on 127.0.0.1 forwards it for `client`: status and rate-limit headers. */
async function anonymousRead(gatewayUrl: string, client: string) {
  const res = await fetch(`${gatewayUrl}/api/tags`, { headers: { 'x-forwarded-for': client } });
  await res.arrayBuffer();
  const remaining = /"anonymous";r=(\d+)/.exec(res.headers.get('ratelimit') ?? '')?.[1];
  return { status: res.status, policy: res.headers.get('ratelimit-policy'), remaining: Number(remaining) };
}

describe('npm start (the local stack) from a clean copy', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(async () => {
    dir = await ownedTempDir('clone');
    // A checkout is normally readable by other users (the embedded PostgreSQL runs as 'postgres').
    chmodSync(dir, 0o755);
    cleanCopy(dir);
    env = { ...process.env, PORT: String(await freePort()) };
    delete env.DATABASE_URL; // the embedded PostgreSQL, as on a fresh machine
    delete env.npm_config_prefix;
  });
  afterAll(() => {
    removeOwnedDir(dir);
  });

  it('starts, answers through the gateway, stops on Ctrl-C, and reuses its data and takes settings on the next start', async () => {
    // First start: installs, creates the data, migrates, serves.
    const first = new NpmStart(dir, env);
    const [, gatewayUrl = ''] = await first.waitFor(/atoll is up: (http:\/\/\S+)/);
    for (const line of [
      'redis-cache ready',
      'redis-session ready',
      'redis-queue ready',
      'postgres ready',
      'auth ready',
      'content ready',
      'notifier ready',
      'gateway ready',
    ]) {
      expect(first.output).toContain(line);
    }
    expect(first.output).toContain('auth migrations: auth: 2026-11-22T00-00_create_users success');
    const health = await fetch(`${gatewayUrl}/health/services`);
    expect(health.status).toBe(200);
    // The gateway's identity key pair, made once: the private key readable by this user only.
    const dataDir = join(dir, '.atoll', 'data');
    const keyFile = join(dataDir, 'identity', 'identity.key');
    expect(statSync(join(dataDir, 'identity')).mode & 0o777).toBe(0o700);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const privateKey = readFileSync(keyFile, 'utf8');
    expect(privateKey).toContain('-----BEGIN PRIVATE KEY-----');
    expect(readFileSync(join(dataDir, 'identity', 'identity.pub'), 'utf8')).toContain(
      '-----BEGIN PUBLIC KEY-----',
    );
    // Without settings: no CORS for another origin, the default anonymous limit, and X-Forwarded-For is
    // not believed (two forwarded clients count against the one peer address).
    expect((await preflight(gatewayUrl, FRONTEND)).allowOrigin).toBeNull();
    const before = await anonymousRead(gatewayUrl, '203.0.113.1');
    expect(before.policy).toMatch(/^"anonymous";q=\d+;w=60$/);
    expect(before.policy).not.toBe('"anonymous";q=3;w=60');
    expect((await anonymousRead(gatewayUrl, '203.0.113.2')).remaining).toBe(before.remaining - 1);

    // Its data is its user's alone: the folder, the keys, the passwords, the logs (as root the folder
    // lets the embedded PostgreSQL's user through, without listing it).
    const data = join(dir, '.atoll', 'data');
    const mode = (path: string) => statSync(join(data, path)).mode & 0o777;
    expect(mode('.')).toBe(process.getuid?.() === 0 ? 0o711 : 0o700);
    for (const file of [
      'identity/identity.key',
      'credentials.json',
      'postgres/superuser-password',
      'redis-session/users.acl',
      'logs/gateway.log',
    ])
      expect(mode(file), file).toBe(0o600);
    for (const folder of ['identity', 'logs', 'redis-cache', 'redis-session', 'redis-queue'])
      expect(mode(folder), folder).toBe(0o700);
    // The output names addresses, never a password; the admin's is in the credentials file.
    const credentials = JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8'));
    const admin = credentials.redis.session.admin as string;
    expect(admin).toMatch(/^[0-9a-f]{64}$/);
    expect(first.output).not.toContain(admin);
    expect(Object.keys(credentials.postgres).sort()).toEqual([
      'atoll_auth',
      'atoll_auth_owner',
      'atoll_content',
      'atoll_content_owner',
      'atoll_notifier',
      'atoll_notifier_owner',
    ]);
    // The token content sends to auth's internal profile route: made once, kept with the passwords.
    const internalToken = credentials.internal as string;
    expect(internalToken).toMatch(/^[0-9a-f]{64}$/);
    expect(first.output).not.toContain(internalToken);

    // A session written now must still work after a restart.
    const [, sessionAddress = ''] = first.output.match(/redis-session ready at (redis:\/\/\S+)/) ?? [];
    const sessionUrl = sessionAddress.replace('//', `//default:${admin}@`);
    const redis = await connectRedis({
      url: sessionUrl ?? '',
      role: 'session',
      use: 'producer',
      name: 't',
      log: silent,
    });
    const { token } = await new SessionStore(redis, createKeys('atoll')).create({
      userId: 'u1',
      username: 'ada',
      roles: [],
    });
    await closeRedis(redis);
    const written = Date.now();
    const me = await fetch(`${gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(me.status).toBe(200);

    first.interrupt();
    await first.stopped();
    // redis-session saved its snapshot on the way out (SIGTERM), with the session in it.
    const snapshot = join(data, 'redis-session', 'session.rdb');
    expect(
      statSync(snapshot, { throwIfNoEntry: false })?.mtimeMs ?? 0,
      'session.rdb saved at the stop',
    ).toBeGreaterThanOrEqual(written - 1000);
    await expect(fetch(`${gatewayUrl}/health/live`)).rejects.toThrow();
    // Everything it started is gone, Redis included.
    await expect(
      connectRedis({
        url: sessionUrl ?? '',
        role: 'session',
        use: 'producer',
        name: 't',
        log: silent,
        connectWaitMs: 300,
      }),
    ).rejects.toThrow(/did not answer/);

    // Second start: same data, and the settings in its environment reach the gateway.
    const second = new NpmStart(dir, { ...env, ...SETTINGS });
    await second.waitFor(/atoll is up: /);
    expect(second.output).toContain('auth migrations: auth: up to date');
    expect(second.output).toContain('content migrations: content: up to date');
    expect(readFileSync(keyFile, 'utf8')).toBe(privateKey);
    expect(JSON.parse(readFileSync(join(data, 'credentials.json'), 'utf8')).internal).toBe(internalToken);
    const again = await fetch(`${gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${token}` },
    });
    const body = await again.text();
    expect(again.status, body).toBe(200);
    expect((JSON.parse(body) as { session: { username: string } }).session.username).toBe('ada');
    // CORS_ORIGINS: the frontend's origin may call, any other still may not.
    expect(await preflight(gatewayUrl, FRONTEND)).toEqual({ status: 204, allowOrigin: FRONTEND });
    expect((await preflight(gatewayUrl, 'http://localhost:4300')).allowOrigin).toBeNull();
    // RATE_LIMIT_ANONYMOUS_MAX=3: the fourth anonymous request from one client is refused...
    const reads = [];
    for (let i = 0; i < 4; i++) reads.push(await anonymousRead(gatewayUrl, '203.0.113.7'));
    expect(reads.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(reads[0]).toMatchObject({ policy: '"anonymous";q=3;w=60', remaining: 2 });
    // ...and TRUSTED_PROXIES: the client is the forwarded address, so another one has its own budget.
    expect(await anonymousRead(gatewayUrl, '203.0.113.8')).toMatchObject({ status: 200, remaining: 2 });

    // A Redis server that dies (here redis-cache, SIGKILLed as by the OOM killer) takes the stack down
    // with it, saying which and how, as a service that dies does.
    const [, cacheAddress = ''] = second.output.match(/redis-cache ready at (redis:\/\/\S+)/) ?? [];
    const cache = await connectRedis({
      url: cacheAddress.replace('//', `//default:${credentials.redis.cache.admin}@`),
      role: 'cache',
      use: 'producer',
      name: 't',
      log: silent,
    });
    const [, pid = ''] = (await cache.info('server')).match(/process_id:(\d+)/) ?? [];
    await closeRedis(cache);
    process.kill(Number(pid), 'SIGKILL');
    await second.waitFor(/atoll: stopped/, 30_000);
    expect(await second.exited).toBe(1);
    expect(second.output).toMatch(/atoll: redis-cache exited \(SIGKILL\)/);
    await expect(fetch(`${gatewayUrl}/health/live`)).rejects.toThrow();
  }, 300_000);

  it('says how to get redis-server when it is missing, and exits non-zero', async () => {
    const bin = join(dir, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    for (const tool of ['node', 'npm', 'pnpm', 'dirname', 'sh']) {
      const path = execFileSync('bash', ['-c', `command -v ${tool}`], { env })
        .toString()
        .trim();
      symlinkSync(path, join(bin, tool));
    }
    const run = spawn('/bin/bash', ['scripts/atoll', 'start'], {
      cwd: dir,
      env: { ...env, PATH: bin },
      stdio: 'pipe',
    });
    let output = '';
    run.stderr.on('data', (c: Buffer) => (output += c.toString()));
    run.stdout.on('data', (c: Buffer) => (output += c.toString()));
    const code = await new Promise((resolve) => run.once('exit', resolve));
    expect(code).toBe(1);
    expect(output).toContain('redis-server is not on PATH');
    expect(output).toContain('apt-get install redis-server');
    expect(output).toContain('docker compose up');
  });
});
