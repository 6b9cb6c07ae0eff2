import { clusterNodeArgs, RedisCluster, RedisServer } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRedis,
  clusterNodes,
  connectRedis,
  isCluster,
  isRedisUnavailable,
  mgetAcrossSlots,
  oneSlotMulti,
  parseRedisUrl,
  RedisRoleError,
  type RoleCheckedRedis,
  replicasToAck,
} from '../src/index.ts';
import { expectUrlRefused } from './url-refusal.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('redis+cluster:// URLs', () => {
  it('parses the seed nodes (6379 when left out) and one credential, percent-decoded', () => {
    expect(parseRedisUrl('redis+cluster://content:p%40ss%3Aw@10.0.0.1:7000,[::1]:7001,node-3')).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '::1', port: 7001 },
        { host: 'node-3', port: 6379 },
      ],
      username: 'content',
      password: 'p@ss:w',
    });
  });

  it('accepts a trailing slash and no credentials', () => {
    expect(parseRedisUrl('redis+cluster://h1:7000/')).toEqual({
      kind: 'cluster',
      nodes: [{ host: 'h1', port: 7000 }],
      username: undefined,
      password: undefined,
    });
  });

  it.each([
    ['redis+cluster://u:secretpw@h1:7000/0', 'expected redis+cluster://'],
    ['redis+cluster://u:secretpw@h1:7000?readonly=1', 'no path, no query'],
    ['redis+cluster://u:secretpw@', 'expected redis+cluster://'],
    ['redis+cluster://u:secretpw@h1:7000,,h2', 'the node address "" is not <host>:<port>'],
    ['redis+cluster://u:secretpw@h1:70000', 'the node port in "h1:70000" is not 1-65535'],
    ['redis+cluster://u:secretpw@h1:0', 'the node port in "h1:0" is not 1-65535'],
    ['redis+cluster://u:secret%E0pw@h1:7000', 'the password is not percent-encoded correctly'],
    ['redis+cluster:/u:secretpw@h1:7000', 'expected redis://'],
  ])('refuses %s with one line that names the problem, never the password', (url, problem) => {
    expectUrlRefused(url, problem);
  });
});

describe('a Redis Cluster (three primaries, three replicas)', () => {
  let cluster: RedisCluster;
  const clients: RoleCheckedRedis[] = [];
  const connect = async (url: string) => {
    const c = await connectRedis({ url, role: 'cache', use: 'producer', name: 'test:cache', log: silent });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await RedisCluster.start({ role: 'cache', keyPrefix: 'tclu' });
  });
  afterAll(async () => {
    await Promise.all(clients.map(closeRedis));
    await cluster?.dispose();
  });

  it('connects a service as its own user on every node, and checks every primary and replica', async () => {
    const c = await connect(cluster.urlFor('content'));
    expect(isCluster(c)).toBe(true);
    expect(c.roleOk()).toBe(true);
    // No WAIT on a cluster: the cache keeps nothing that must survive a failover.
    expect(replicasToAck(c)).toBe(0);
    if (!isCluster(c)) throw new Error('not a cluster client');
    const nodes = clusterNodes(c);
    expect(nodes.filter((n) => n.kind === 'primary')).toHaveLength(3);
    expect(nodes.filter((n) => n.kind === 'replica')).toHaveLength(3);
    // Keys of many slots, each on its node (MOVED is followed), and read back in one mgetAcrossSlots.
    const keys = Array.from({ length: 30 }, (_, i) => `tclu:c:{content:${i}}`);
    await Promise.all(keys.map((k, i) => c.set(k, String(i), 'PX', 60_000)));
    await expect(mgetAcrossSlots(c, [...keys, 'tclu:c:{content:none}'])).resolves.toEqual([
      ...keys.map((_, i) => String(i)),
      null,
    ]);
    // Its user may not touch another service's keys, on whichever node serves them.
    await expect(c.get('other:key')).rejects.toThrow(/NOPERM/);
    // Nor change the cluster.
    await expect(c.call('CLUSTER', 'FORGET', 'x')).rejects.toThrow(/NOPERM/);
  });

  it('counts a MOVED handed over as it is (a slot served by another node) as Redis unavailable', async () => {
    // A plain connection to one node, asked for keys until one of them is served by another node.
    const plain = new Redis(cluster.nodes[0]?.urlFor('content') as string, { maxRetriesPerRequest: 0 });
    try {
      let moved: Error | undefined;
      for (let i = 0; i < 50 && !moved; i++)
        moved = await plain.get(`tclu:c:{content:moved-${i}}`).then(
          () => undefined,
          (err: Error) => err,
        );
      expect(moved?.message).toMatch(/^MOVED \d+ /);
      expect(isRedisUnavailable(moved)).toBe(true);
    } finally {
      plain.disconnect();
    }
  });

  it('keeps going when a primary is SIGKILLed: its replica is promoted and the client follows', async () => {
    const c = await connect(cluster.urlFor('content'));
    const keys = Array.from({ length: 30 }, (_, i) => `tclu:c:{kill:${i}}`);
    await Promise.all(keys.map((k) => c.set(k, 'v', 'PX', 60_000)));
    const old = await cluster.killPrimary();
    let failed = 0;
    let unavailable = 0;
    const started = Date.now();
    await cluster.waitForFailover(old);
    const failoverMs = Date.now() - started;
    // Once the cluster says ok, every key is served again (by the promoted replica for old's slots).
    for (let round = 0; round < 3; round++) {
      for (const k of keys) {
        try {
          await c.set(k, 'w', 'PX', 60_000);
        } catch (err) {
          failed += 1;
          if (isRedisUnavailable(err)) unavailable += 1;
        }
      }
    }
    console.log(`cluster failover: ${failoverMs} ms until cluster_state:ok; ${failed} writes failed after`);
    expect(failed).toBe(unavailable);
    expect(await mgetAcrossSlots(c, keys)).toEqual(keys.map(() => 'w'));
    await cluster.restart(old);
    expect(await cluster.replicas()).toContain(old);
  });
});

describe('the role check on a cluster', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    // Node 4 is the first replica: configured for the queue instead of the cache.
    cluster = await RedisCluster.start({
      role: 'cache',
      keyPrefix: 'tclu',
      nodeArgs: (index) => (index === 3 ? ['--maxmemory-policy', 'noeviction'] : []),
    });
  });
  afterAll(async () => {
    await cluster?.dispose();
  });

  it('refuses a service when one replica is unfit for the role, naming the node and the setting', async () => {
    const replica = cluster.nodes[3];
    const err = await connectRedis({
      url: cluster.urlFor('content'),
      role: 'cache',
      use: 'producer',
      name: 'test:cache',
      log: silent,
    }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(RedisRoleError);
    expect((err as Error).message).toContain(`127.0.0.1:${replica?.port} (replica in the cluster)`);
    expect((err as Error).message).toContain('maxmemory-policy is noeviction');
  });
});

describe('isRedisUnavailable and a MULTI refused as it was queued', () => {
  // One cluster-enabled node that serves no slot yet: it answers every keyed command with CLUSTERDOWN,
  // as every node of a cluster does while a failed primary's replica is not yet promoted.
  let node: RedisServer;
  const clients: Redis[] = [];
  beforeAll(async () => {
    node = await RedisServer.start('cache', {
      keyPrefix: 'tclu',
      args: await clusterNodeArgs(),
    });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await node?.dispose();
  });
  const plain = (url: string) => {
    const c = new Redis(url, { maxRetriesPerRequest: 0 });
    clients.push(c);
    return c;
  };
  const execError = (run: Promise<unknown>) =>
    run.then(
      () => new Error('no error'),
      (err: unknown) => err as Error,
    );

  it('counts EXECABORT as unavailable when every queued command met CLUSTERDOWN', async () => {
    const c = plain(node.urlFor('content'));
    const key = 'tclu:c:{content:multi}';
    const err = await execError(
      oneSlotMulti(c, 'test', [key]).set(key, '1', 'PX', 1000).set(key, '2', 'PX', 1000).exec(),
    );
    expect(err.message).toMatch(/^EXECABORT/);
    expect((err as { previousErrors?: Error[] }).previousErrors?.map((e) => e.message.split(' ')[0])).toEqual(
      ['CLUSTERDOWN', 'CLUSTERDOWN'],
    );
    expect(isRedisUnavailable(err)).toBe(true);
  });

  it('but not when a queued command was refused for what it is (NOPERM): that is a bug, not an outage', async () => {
    const c = plain(node.urlFor('content'));
    const err = await execError(c.multi().set('someone-else:key', '1').exec());
    expect(err.message).toMatch(/^EXECABORT/);
    expect(isRedisUnavailable(err)).toBe(false);
  });
});
