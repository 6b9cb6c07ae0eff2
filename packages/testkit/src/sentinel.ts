/**
 * A Sentinel group for one role, as a deployment that must not lose data runs redis-session and
 * redis-queue: a primary, one replica and three sentinels (quorum 2), each a real process on a free
 * port. The data nodes run the role's deploy/redis file (a copy in their own folder: the sentinels
 * CONFIG REWRITE it on failover) and the same ACL file (@atoll/redis-keys acl.ts): the service users, the
 * admin, the replication user every node replicates with (any may become the primary) and the user the
 * sentinels monitor them with. The sentinels carry the admin, their peers' user and each service's user
 * with the same password, allowed only to ask where the nodes are; so a service's
 * `redis+sentinel://` URL (`urlFor`) carries one credential.
 *
 * `killPrimary()` SIGKILLs the current primary as a crash would; `waitForFailover` waits until the
 * sentinels name another; `restart(node)` brings a killed node back, which the sentinels turn into a
 * replica of the new primary (as a supervisor restarting a crashed pod does).
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AclUsers, REPLICATION_USER, SENTINEL_USER, sentinelAclLines } from '@atoll/redis-keys';
import { Redis } from 'ioredis';
import { ownedTempDir, removeOwnedDir } from './owned.ts';
import { freePort } from './ports.ts';
import { ONE_SHOT, oneShot, waitUntil } from './redis-admin.ts';
import { type RedisServer, randomPassword, startGroupNode } from './redis-server.ts';
import { spawnUntilReady } from './spawn-ready.ts';

export type SentinelRole = 'session' | 'queue';

export interface SentinelGroupOptions {
  role: SentinelRole;
  /** The services' key prefix: with it, each service that uses the role gets its users. */
  keyPrefix?: string;
  /** Passwords to keep; any missing one is made at random. */
  passwords?: Partial<AclUsers>;
  /** The group's data lives here (and is not removed on stop); else a temporary folder. */
  dir?: string;
  /** How long a primary may not answer before a sentinel thinks it down (default 1000 ms). */
  downAfterMs?: number;
  /** Sentinel's failover-timeout (default 5000 ms). */
  failoverTimeoutMs?: number;
}

const QUORUM = 2;
const SENTINELS = 3;

/** One `redis-server --sentinel` process. */
class SentinelProcess {
  readonly port: number;
  private readonly conf: string;
  private child: ChildProcess | undefined;

  constructor(port: number, conf: string) {
    this.port = port;
    this.conf = conf;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async spawn(): Promise<void> {
    const started = await spawnUntilReady(
      'redis-sentinel',
      'redis-server',
      [this.conf, '--sentinel'],
      '+monitor master',
    );
    this.child = started.child;
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
  }
}

export class SentinelGroup {
  readonly role: SentinelRole;
  /** The master name the sentinels monitor. */
  readonly name: string;
  readonly passwords: AclUsers;
  /** The data nodes: the first started as primary, the second as its replica. */
  readonly nodes: RedisServer[];
  private readonly sentinels: SentinelProcess[];
  private readonly dir: string;
  private readonly ownsDir: boolean;

  private constructor(
    opts: {
      role: SentinelRole;
      name: string;
      passwords: AclUsers;
      dir: string;
      ownsDir: boolean;
    },
    nodes: RedisServer[],
    sentinels: SentinelProcess[],
  ) {
    this.role = opts.role;
    this.name = opts.name;
    this.passwords = opts.passwords;
    this.dir = opts.dir;
    this.ownsDir = opts.ownsDir;
    this.nodes = nodes;
    this.sentinels = sentinels;
  }

  static async start(opts: SentinelGroupOptions): Promise<SentinelGroup> {
    const { role } = opts;
    const dir = opts.dir ?? (await ownedTempDir(`sentinel-${role}`));
    const name = `atoll-${role}`;
    const replica = opts.passwords?.replica ?? randomPassword();
    const sentinel = opts.passwords?.sentinel ?? randomPassword();
    const nodes: RedisServer[] = [];
    const sentinels: SentinelProcess[] = [];
    try {
      // Every node may be a primary one day, so each replicates (when told to) with the same user.
      const replication = ['--masteruser', REPLICATION_USER.name, '--masterauth', replica];
      const node = async (index: number, args: string[], passwords: Partial<AclUsers>) => {
        const server = await startGroupNode(role, dir, index, { args, passwords, keyPrefix: opts.keyPrefix });
        nodes.push(server);
        return server;
      };
      const primary = await node(0, replication, { ...opts.passwords, replica, sentinel });
      const passwords = primary.passwords;
      await node(1, [...replication, '--replicaof', '127.0.0.1', String(primary.port)], passwords);
      await waitUntil(async () => (await connectedReplicas(primary)) >= 1, 10_000, 'the replica to sync');

      const users = sentinelAclLines(role, opts.keyPrefix ?? 'atoll', passwords);
      for (let i = 0; i < SENTINELS; i++) {
        const port = await freePort();
        const sentinelDir = join(dir, `sentinel-${i + 1}`);
        mkdirSync(sentinelDir, { recursive: true, mode: 0o700 });
        const conf = join(sentinelDir, 'sentinel.conf');
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            `dir ${sentinelDir}`,
            ...users,
            `sentinel sentinel-user ${SENTINEL_USER.name}`,
            `sentinel sentinel-pass ${sentinel}`,
            `sentinel monitor ${name} 127.0.0.1 ${primary.port} ${QUORUM}`,
            `sentinel auth-user ${name} ${SENTINEL_USER.name}`,
            `sentinel auth-pass ${name} ${sentinel}`,
            `sentinel down-after-milliseconds ${name} ${opts.downAfterMs ?? 1000}`,
            `sentinel failover-timeout ${name} ${opts.failoverTimeoutMs ?? 5000}`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
          { mode: 0o600 },
        );
        const process = new SentinelProcess(port, conf);
        sentinels.push(process);
        await process.spawn();
      }
      const group = new SentinelGroup(
        { role, name, passwords, dir, ownsDir: opts.dir === undefined },
        nodes,
        sentinels,
      );
      // Ready when every sentinel knows the replica and the two other sentinels (hello every 2 s).
      await waitUntil(
        async () => {
          for (const port of group.sentinelPorts) {
            const known = await group.askSentinel(port, async (s) => ({
              replicas: ((await s.call('SENTINEL', 'REPLICAS', name)) as unknown[]).length,
              sentinels: ((await s.call('SENTINEL', 'SENTINELS', name)) as unknown[]).length,
            }));
            if (known.replicas < 1 || known.sentinels < SENTINELS - 1) return false;
          }
          return true;
        },
        20_000,
        'the sentinels to find the replica and each other',
      );
      return group;
    } catch (err) {
      for (const s of sentinels) await s.stop().catch(() => undefined);
      for (const n of nodes) await n.stop().catch(() => undefined);
      if (opts.dir === undefined) removeOwnedDir(dir);
      throw err;
    }
  }

  get sentinelPorts(): number[] {
    return this.sentinels.map((s) => s.port);
  }

  private urlWith(user: string, password: string): string {
    const hosts = this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',');
    return `redis+sentinel://${user}:${password}@${hosts}/${this.name}`;
  }

  /** The admin's URL (the `default` user on the nodes and the sentinels): tests and operators only. */
  get url(): string {
    return this.urlWith('default', this.passwords.admin);
  }

  /** The sentinels' addresses, without any credential. */
  get address(): string {
    return `redis+sentinel://${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${this.name}`;
  }

  /** The URL a service connects with: its own ACL user, on the nodes and the sentinels. */
  urlFor(service: Exclude<keyof AclUsers, 'admin' | 'replica' | 'sentinel'>): string {
    const password = this.passwords[service];
    if (!password) throw new Error(`${service} has no user on redis-${this.role}: it uses no key there`);
    return this.urlWith(service, password);
  }

  /** True while any of the group's processes runs. */
  get running(): boolean {
    return this.nodes.some((n) => n.running) || this.sentinels.some((s) => s.running);
  }

  private askSentinel<T>(port: number, ask: (s: Redis) => Promise<T>): Promise<T> {
    return oneShot(new Redis({ port, host: '127.0.0.1', password: this.passwords.admin, ...ONE_SHOT }), ask);
  }

  /** What the sentinels refused anyone (ACL LOG of each running sentinel). */
  async sentinelAclLog(): Promise<unknown[][]> {
    const entries: unknown[][] = [];
    for (const s of this.sentinels) {
      if (!s.running) continue;
      entries.push(
        ...(await this.askSentinel(s.port, (c) => c.call('ACL', 'LOG', '128') as Promise<unknown[][]>)),
      );
    }
    return entries;
  }

  /** The node the sentinels currently name as primary (the first sentinel that answers). */
  async primary(): Promise<RedisServer> {
    for (const port of this.sentinelPorts) {
      const addr = await this.askSentinel(
        port,
        async (s) => (await s.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name)) as [string, string],
      ).catch(() => null);
      const node = addr && this.nodes.find((n) => n.port === Number(addr[1]));
      if (node) return node;
    }
    throw new Error(`no sentinel of ${this.name} names a primary`);
  }

  /** SIGKILLs the current primary, as a crash or an OOM kill would; returns it (to `restart` later). */
  async killPrimary(): Promise<RedisServer> {
    const primary = await this.primary();
    await primary.kill();
    return primary;
  }

  /** Waits until the sentinels name a primary other than `old` that answers as one; returns it. */
  async waitForFailover(old: RedisServer, timeoutMs = 30_000): Promise<RedisServer> {
    let found: RedisServer | undefined;
    await waitUntil(
      async () => {
        const now = await this.primary();
        if (now === old || !(await isPrimary(now))) return false;
        found = now;
        return true;
      },
      timeoutMs,
      `a failover of ${this.name}`,
    );
    return found as RedisServer;
  }

  /**
   * A planned switch-over (SENTINEL FAILOVER): the primary turns replica while its clients are still
   * connected, so their next write is answered READONLY. Resolves with the new primary once the old
   * one is in sync with it.
   */
  async switchover(timeoutMs = 30_000): Promise<RedisServer> {
    const old = await this.primary();
    const port = this.sentinelPorts[0] as number;
    await this.askSentinel(port, (s) => s.call('SENTINEL', 'FAILOVER', this.name));
    const next = await this.waitForFailover(old, timeoutMs);
    await this.waitForSync(1, timeoutMs);
    return next;
  }

  /** Resolves once the current primary counts `replicas` replicas online (in sync). */
  async waitForSync(replicas = 1, timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      async () => (await connectedReplicas(await this.primary())) >= replicas,
      timeoutMs,
      `${replicas} replica(s) of ${this.name} in sync`,
    );
  }

  /**
   * Starts a stopped node again with its data; the sentinels make it a replica of the current primary.
   * Resolves once the primary counts `replicas` synced replicas.
   */
  async restart(node: RedisServer, replicas = 1, timeoutMs = 30_000): Promise<void> {
    await node.restart();
    await this.waitForSync(replicas, timeoutMs);
  }

  /** Stops the sentinels first (no failover while the nodes stop), then the nodes. */
  async stop(): Promise<void> {
    for (const s of this.sentinels) await s.stop().catch(() => undefined);
    for (const n of this.nodes) await n.stop().catch(() => undefined);
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsDir) removeOwnedDir(this.dir);
  }
}

function adminClient<T>(node: RedisServer, ask: (c: Redis) => Promise<T>): Promise<T> {
  return oneShot(new Redis(node.url, ONE_SHOT), ask);
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)$`, 'm').exec(info)?.[1]?.trim();
}

/** How many replicas are online in the primary's view (INFO replication). */
async function connectedReplicas(primary: RedisServer): Promise<number> {
  if (!primary.running) return 0;
  const info = await adminClient(primary, (c) => c.info('replication')).catch(() => '');
  return (info.match(/^slave\d+:.*state=online/gm) ?? []).length;
}

async function isPrimary(node: RedisServer): Promise<boolean> {
  if (!node.running) return false;
  const info = await adminClient(node, (c) => c.info('replication')).catch(() => '');
  return infoField(info, 'role') === 'master';
}
