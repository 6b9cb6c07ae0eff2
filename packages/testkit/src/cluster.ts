import { type AclUsers, REPLICATION_USER } from '@atoll/redis-keys';
import { Redis } from 'ioredis';
import { ownedTempDir, removeOwnedDir } from './owned.ts';
import { freePort } from './ports.ts';
import { ONE_SHOT, oneShot, waitUntil } from './redis-admin.ts';
import { type RedisServer, type Role, randomPassword, startGroupNode } from './redis-server.ts';

export interface RedisClusterOptions {
  role: Role;
  /** The services' key prefix: with it, each service that uses the role gets its users. */
  keyPrefix?: string;
  /** Passwords to keep; any missing one is made at random. */
  passwords?: Partial<AclUsers>;
  /** The cluster's data lives here (and is not removed on stop); else a temporary folder. */
  dir?: string;
  /** How long a node may not answer before the others think it failed (default 1000 ms). */
  nodeTimeoutMs?: number;
  /**
   * Extra `redis-server` arguments for one node (0-2 the primaries, 3-5 their replicas), e.g. to
   * misconfigure a replica on purpose.
   */
  nodeArgs?: (index: number) => string[];
}

const PRIMARIES = 3;
const SLOTS = 16384;

/** What makes a redis-server a cluster node: cluster mode, its own nodes file, a free bus port. */
export async function clusterNodeArgs(): Promise<string[]> {
  return [
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    'nodes.conf',
    // The bus port would be port + 10000, which may not exist for a free port.
    '--cluster-port',
    String(await freePort()),
  ];
}

/** One line of CLUSTER NODES. */
interface NodeLine {
  id: string;
  port: number;
  flags: string[];
  /** The primary's id for a replica, `-` for a primary. */
  primaryId: string;
  slots: string[];
}

export class RedisCluster {
  readonly role: Role;
  readonly passwords: AclUsers;
  /** Every node, in start order: 0-2 started as primaries, 3-5 as their replicas. */
  readonly nodes: RedisServer[];
  private readonly dir: string;
  private readonly ownsDir: boolean;

  private constructor(role: Role, passwords: AclUsers, nodes: RedisServer[], dir: string, ownsDir: boolean) {
    this.role = role;
    this.passwords = passwords;
    this.nodes = nodes;
    this.dir = dir;
    this.ownsDir = ownsDir;
  }

  static async start(opts: RedisClusterOptions): Promise<RedisCluster> {
    const { role } = opts;
    const dir = opts.dir ?? (await ownedTempDir(`cluster-${role}`));
    const replica = opts.passwords?.replica ?? randomPassword();
    const nodes: RedisServer[] = [];
    try {
      let passwords: Partial<AclUsers> = { ...opts.passwords, replica };
      for (let index = 0; index < 2 * PRIMARIES; index++) {
        const server = await startGroupNode(role, dir, index, {
          args: [
            ...(await clusterNodeArgs()),
            '--cluster-node-timeout',
            String(opts.nodeTimeoutMs ?? 1000),
            '--masteruser',
            REPLICATION_USER.name,
            '--masterauth',
            replica,
            ...(opts.nodeArgs?.(index) ?? []),
          ],
          passwords,
          keyPrefix: opts.keyPrefix,
        });
        nodes.push(server);
        passwords = server.passwords;
      }
      const cluster = new RedisCluster(
        role,
        nodes[0]?.passwords as AclUsers,
        nodes,
        dir,
        opts.dir === undefined,
      );
      await cluster.create();
      return cluster;
    } catch (err) {
      for (const n of nodes) await n.stop().catch(() => undefined);
      if (opts.dir === undefined) removeOwnedDir(dir);
      throw err;
    }
  }

  /** MEET, slots to the primaries, a replica for each, then waits until the cluster is ok everywhere. */
  private async create(): Promise<void> {
    const [first] = this.nodes as [RedisServer];
    const known = (await this.admin(first, (c) => c.call('CLUSTER', 'NODES'))) as string;
    // Started from an existing folder: the nodes already form the cluster.
    if (parseNodes(known).length < this.nodes.length) {
      const busPort = Number(
        await this.admin(first, (c) => c.config('GET', 'cluster-port')).then((r) => r[1]),
      );
      for (const node of this.nodes.slice(1))
        await this.admin(node, (c) =>
          c.call('CLUSTER', 'MEET', '127.0.0.1', String(first.port), String(busPort)),
        );
      for (let i = 0; i < PRIMARIES; i++) {
        const from = Math.floor((i * SLOTS) / PRIMARIES);
        const to = Math.floor(((i + 1) * SLOTS) / PRIMARIES) - 1;
        await this.admin(this.nodes[i] as RedisServer, (c) =>
          c.call('CLUSTER', 'ADDSLOTSRANGE', String(from), String(to)),
        );
      }
      await waitUntil(
        async () => {
          for (const node of this.nodes) {
            const lines = parseNodes((await this.admin(node, (c) => c.call('CLUSTER', 'NODES'))) as string);
            if (lines.length < this.nodes.length || lines.some((l) => l.flags.includes('handshake')))
              return false;
          }
          return true;
        },
        20_000,
        'the cluster nodes to meet',
      );
      for (let i = 0; i < PRIMARIES; i++) {
        const primaryId = (await this.admin(this.nodes[i] as RedisServer, (c) =>
          c.call('CLUSTER', 'MYID'),
        )) as string;
        await this.admin(this.nodes[PRIMARIES + i] as RedisServer, (c) =>
          c.call('CLUSTER', 'REPLICATE', primaryId),
        );
      }
    }
    await this.waitHealthy();
  }

  /** Resolves once every running node says `cluster_state:ok` and every primary has a replica in sync. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      async () => {
        if (!(await this.allOk())) return false;
        for (const primary of await this.primaries()) {
          const replication = await this.admin(primary, (c) => c.info('replication'));
          if (!/^slave\d+:.*state=online/m.test(replication)) return false;
        }
        // Clients learn the nodes from CLUSTER SLOTS, which names a replica only once the gossip has
        // carried its replication offset: wait until every node names one per slot range.
        for (const node of this.nodes) {
          if (!node.running) continue;
          const ranges = (await this.admin(node, (c) => c.call('CLUSTER', 'SLOTS'))) as unknown[][];
          if (ranges.length === 0 || ranges.some((range) => range.length < 4)) return false;
        }
        return true;
      },
      timeoutMs,
      `redis-${this.role} cluster_state:ok with a replica in sync per primary`,
    );
  }

  /** The nodes currently serving slots as primaries, as the running nodes see it. */
  async primaries(): Promise<RedisServer[]> {
    const lines = await this.view();
    return this.nodes.filter((n) =>
      lines.some(
        (l) =>
          l.port === n.port && l.flags.includes('master') && !l.flags.includes('fail') && l.slots.length > 0,
      ),
    );
  }

  /** The replicas of the current primaries. */
  async replicas(): Promise<RedisServer[]> {
    const lines = await this.view();
    return this.nodes.filter((n) => lines.some((l) => l.port === n.port && l.flags.includes('slave')));
  }

  /** CLUSTER NODES from the first running node that answers. */
  private async view(): Promise<NodeLine[]> {
    for (const node of this.nodes) {
      if (!node.running) continue;
      const text = await this.admin(node, (c) => c.call('CLUSTER', 'NODES') as Promise<string>).catch(
        () => null,
      );
      if (text) return parseNodes(text);
    }
    throw new Error(`no node of the redis-${this.role} cluster answers`);
  }

  /** SIGKILLs a primary (the first of `primaries()`), as a crash would; returns it (to `restart` later). */
  async killPrimary(): Promise<RedisServer> {
    const [primary] = await this.primaries();
    if (!primary) throw new Error('the cluster has no primary to kill');
    await primary.kill();
    return primary;
  }

  /**
   * Waits until `old` serves no slot any more (its replica was promoted), three primaries serve them all
   * and every running node says `cluster_state:ok`.
   */
  async waitForFailover(old: RedisServer, timeoutMs = 30_000): Promise<void> {
    await waitUntil(
      async () => {
        const primaries = await this.primaries();
        if (primaries.includes(old) || primaries.length < PRIMARIES) return false;
        return this.allOk();
      },
      timeoutMs,
      `a failover of ${old.address} in the redis-${this.role} cluster`,
    );
  }

  /** True when every running node says `cluster_state:ok`. */
  private async allOk(): Promise<boolean> {
    for (const node of this.nodes) {
      if (!node.running) continue;
      const info = (await this.admin(node, (c) => c.call('CLUSTER', 'INFO'))) as string;
      if (!/^cluster_state:ok/m.test(info)) return false;
    }
    return true;
  }

  /** Starts a stopped node again with its cluster config file; resolves once the cluster is healthy. */
  async restart(node: RedisServer, timeoutMs = 30_000): Promise<void> {
    await node.restart();
    await this.waitHealthy(timeoutMs);
  }

  private seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  /** The admin's URL (the `default` user on every node): tests and operators only. */
  get url(): string {
    return `redis+cluster://default:${this.passwords.admin}@${this.seeds()}`;
  }

  /** The seed nodes' addresses, without any credential. */
  get address(): string {
    return `redis+cluster://${this.seeds()}`;
  }

  /** The URL a service (or the key-space audit) connects with: its own ACL user, on every node. */
  urlFor(service: Exclude<keyof AclUsers, 'admin' | 'replica' | 'sentinel'>): string {
    const password = this.passwords[service];
    if (!password) throw new Error(`${service} has no user on redis-${this.role}: it uses no key there`);
    return `redis+cluster://${service}:${encodeURIComponent(password)}@${this.seeds()}`;
  }

  /** True while any node runs. */
  get running(): boolean {
    return this.nodes.some((n) => n.running);
  }

  /** One question to one node as the admin, on a connection that tries once. */
  admin<T>(node: RedisServer, ask: (c: Redis) => Promise<T>): Promise<T> {
    return oneShot(new Redis(node.url, ONE_SHOT), ask);
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.stop().catch(() => undefined);
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownsDir) removeOwnedDir(this.dir);
  }
}

function parseNodes(text: string): NodeLine[] {
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [id = '', address = '', flags = '', primaryId = '', , , , , ...slots] = line.trim().split(' ');
      return {
        id,
        port: Number(address.split('@')[0]?.split(':')[1]),
        flags: flags.split(','),
        primaryId,
        slots,
      };
    });
}
