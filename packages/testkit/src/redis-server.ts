import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AclUsers, aclFile, type Service, servicesOn } from '@atoll/redis-keys';
import { ownedTempDir, ownProcess, removeOwnedDir } from './owned.ts';
import { redisConf } from './paths.ts';
import { freePort } from './ports.ts';
import type { Exit } from './service-process.ts';

export type Role = 'cache' | 'session' | 'queue';

export interface RedisServerOptions {
  /** Defaults to the role's own file in deploy/redis. */
  conf?: string;
  /** Extra `--name value` arguments, e.g. `['--maxmemory', '0']` to misconfigure on purpose. */
  args?: string[];
  /** Keep data in this folder (and do not remove it on stop). */
  dir?: string;
  port?: number;
  /**
   * The key prefix the services use: with it, each service that uses the role gets its own ACL user
   * (@atoll/redis-keys acl.ts), and the key-space audit its `audit` user; without it, only the admin
   * exists.
   */
  keyPrefix?: string;
  /** Passwords to keep (the local stack's, across starts); any missing one is made at random. */
  passwords?: Partial<AclUsers>;
}

/** Every user's password on one server: `admin` is the `default` user's. */
export type RedisPasswords = AclUsers;

/** A random password, 256 bits as hex. */
export const randomPassword = () => randomBytes(32).toString('hex');

/**
 * A real `redis-server` process started with atoll's configuration for a role, on a free port, with its
 * persistence files in its own temporary folder, and its ACL users in `users.acl` there (mode 0600): the
 * admin (`default`, for tests and operators: `url`) and, given a key prefix, each service that uses the
 * role (`urlFor(service)`). Nobody connects without a password (`address` has none).
 */
export class RedisServer {
  readonly role: Role;
  readonly port: number;
  readonly dir: string;
  private readonly conf: string;
  private args: string[];
  private readonly ownsDir: boolean;
  /** Every user's password: `admin` is the `default` user's. */
  readonly passwords: AclUsers;
  private child: ChildProcess | undefined;
  private exit: Promise<Exit> | undefined;
  log = '';

  private constructor(role: Role, port: number, dir: string, ownsDir: boolean, opts: RedisServerOptions) {
    this.role = role;
    this.port = port;
    this.dir = dir;
    this.ownsDir = ownsDir;
    this.conf = opts.conf ?? redisConf(role);
    this.args = opts.args ?? [];
    const services = opts.keyPrefix === undefined ? [] : servicesOn(role, opts.keyPrefix);
    this.passwords = { admin: opts.passwords?.admin ?? randomPassword() };
    for (const s of services) this.passwords[s] = opts.passwords?.[s] ?? randomPassword();
    // The key-space audit's read-only user (@atoll/redis-keys auditRules), on every role.
    if (opts.keyPrefix !== undefined) this.passwords.audit = opts.passwords?.audit ?? randomPassword();
    // The users of a Sentinel group (sentinel.ts), when it gives their passwords.
    for (const user of ['replica', 'sentinel'] as const) {
      const password = opts.passwords?.[user];
      if (password) this.passwords[user] = password;
    }
    writeFileSync(this.aclFile, aclFile(role, opts.keyPrefix ?? 'atoll', this.passwords), { mode: 0o600 });
  }

  private get aclFile(): string {
    return join(this.dir, 'users.acl');
  }

  static async start(role: Role, opts: RedisServerOptions = {}): Promise<RedisServer> {
    const dir = opts.dir ?? (await ownedTempDir(`redis-${role}`));
    for (let attempt = 1; ; attempt += 1) {
      // A port is free when freePort checks it, not always when redis-server binds it: another test's
      // server can take it in between. Then the ports not given are picked again (the cluster bus too).
      const args = attempt === 1 ? opts.args : await withFreshBusPort(opts.args);
      const port = opts.port ?? (await freePort());
      const server = new RedisServer(role, port, dir, opts.dir === undefined, {
        ...opts,
        ...(args ? { args } : {}),
      });
      try {
        await server.spawn();
        return server;
      } catch (err) {
        if (attempt >= 3 || !server.log.includes('Address already in use')) throw err;
      }
    }
  }

  /** The admin's URL (the `default` user): tests and operators only, never a service. */
  get url(): string {
    return `redis://default:${this.passwords.admin}@127.0.0.1:${this.port}`;
  }

  /** The address without any credential. */
  get address(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** The URL a service (or the key-space audit) connects with: its own ACL user. */
  urlFor(service: Service | 'audit'): string {
    const password = this.passwords[service];
    if (!password) throw new Error(`${service} has no user on redis-${this.role}: it uses no key there`);
    return `redis://${service}:${password}@127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async spawn(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        this.conf,
        '--port',
        String(this.port),
        '--bind',
        '127.0.0.1',
        '--dir',
        this.dir,
        '--daemonize',
        'no',
        '--aclfile',
        this.aclFile,
        ...this.args,
      ],
      // Its own process group: a terminal's Ctrl-C reaches only whoever started it, which stops it in
      // order; the reaper ends it if that process dies first.
      { stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    this.child = child;
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    ownProcess(child);
    const ready = new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        this.log += chunk.toString();
        if (this.log.includes('Ready to accept connections')) resolve();
      };
      child.stdout?.on('data', onData);
      child.stderr?.on('data', onData);
      child.once('exit', (code) =>
        reject(
          new Error(`redis-server (${this.role}) exited with ${code} before it was ready:\n${this.log}`),
        ),
      );
      child.once('error', reject);
    });
    await ready;
  }

  /**
   * How the current process ended, once it has: by `stop` or `kill`, or on its own (a crash, a signal
   * from outside). Resolves at once if none was started.
   */
  get exited(): Promise<Exit> {
    return this.exit ?? Promise.resolve({ code: null, signal: null });
  }

  /** Graceful stop (SIGTERM: Redis saves if the role persists). */
  async stop(): Promise<void> {
    await this.signal('SIGTERM');
  }

  /** Sudden death, as in a crash or an OOM kill. */
  async kill(): Promise<void> {
    await this.signal('SIGKILL');
  }

  /**
   * Starts the same server again on the same port and folder (data survives if the role persists).
   * `args` replaces the extra arguments, e.g. to come back misconfigured.
   */
  async restart(args?: string[]): Promise<void> {
    if (this.running) await this.stop();
    if (args) this.args = args;
    this.log = '';
    await this.spawn();
  }

  /** Stops the server and removes its folder. */
  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsDir) removeOwnedDir(this.dir);
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = once(child, 'exit');
    child.kill(sig);
    await exited;
  }
}

/**
 * One data node of a Sentinel group or a cluster: in its own folder `<dir>/node-<index + 1>` with a
 * writable copy of the role's file (Sentinel rewrites it on failover), `args` on top.
 */
export async function startGroupNode(
  role: Role,
  dir: string,
  index: number,
  opts: { args: string[]; passwords: Partial<AclUsers>; keyPrefix: string | undefined },
): Promise<RedisServer> {
  const nodeDir = join(dir, `node-${index + 1}`);
  mkdirSync(nodeDir, { recursive: true, mode: 0o700 });
  const conf = join(nodeDir, `${role}.conf`);
  copyFileSync(redisConf(role), conf);
  return RedisServer.start(role, {
    conf,
    dir: nodeDir,
    args: opts.args,
    passwords: opts.passwords,
    ...(opts.keyPrefix === undefined ? {} : { keyPrefix: opts.keyPrefix }),
  });
}

/** `args` with a new free port after `--cluster-port`, if it has one. */
async function withFreshBusPort(args: string[] | undefined): Promise<string[] | undefined> {
  const at = args?.indexOf('--cluster-port') ?? -1;
  if (!args || at < 0) return args;
  return [...args.slice(0, at + 1), String(await freePort()), ...args.slice(at + 2)];
}
