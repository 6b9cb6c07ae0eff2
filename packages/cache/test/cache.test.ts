/**
 * The three-layer cache on a real redis-server started with deploy/redis/cache.conf, with two cache
 * objects standing for two service instances (each with its own connections).
 */
import { randomUUID } from 'node:crypto';
import {
  closeRedis,
  connectRedis,
  createRedisClient,
  type RedisClient,
  type RoleCheckedRedis,
} from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LayeredCache } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Waits (at most 10 s) until a client has reconnected; it backs off between attempts, longer on a busy machine. */
const ready = async (client: RedisClient) => {
  for (let waited = 0; client.status !== 'ready' && waited < 10_000; waited += 50) await sleep(50);
  expect(client.status).toBe('ready');
};

describe('LayeredCache', () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  const keys = createKeys(`c${randomUUID().slice(0, 6)}`);

  const instance = async (
    opts: Partial<ConstructorParameters<typeof LayeredCache>[0]> = {},
    client: { autoPipelining?: boolean } = {},
  ) => {
    const redis = await connectRedis({
      url: server.url,
      role: 'cache',
      use: 'producer',
      name: 'cache',
      log: silent,
      ...client,
    });
    const subscriber = createRedisClient({
      url: server.url,
      role: 'cache',
      use: 'subscriber',
      name: 'bus',
      log: silent,
    });
    await subscriber.connect();
    clients.push(redis, subscriber);
    const cache = new LayeredCache({
      redis,
      subscriber,
      keys,
      namespace: 'test',
      ttlMs: 60_000,
      graceMs: 30_000,
      log: silent,
      ...opts,
    });
    await cache.start();
    return { cache, redis };
  };

  let admin: RoleCheckedRedis;
  beforeAll(async () => {
    server = await RedisServer.start('cache');
    admin = await connectRedis({
      url: server.url,
      role: 'cache',
      use: 'producer',
      name: 'admin',
      log: silent,
    });
  });
  beforeEach(async () => {
    await ready(admin);
    await admin.flushall();
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => closeRedis(c)));
    await closeRedis(admin);
    await server.dispose();
  });

  const commands = async () => {
    const info = await admin.info('commandstats');
    let total = 0;
    for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) if (m[1] !== 'info') total += Number(m[2]);
    return total;
  };

  it('serves an L1 hit with no Redis command, and an L2 hit on another instance without loading', async () => {
    const a = await instance();
    const b = await instance();
    let loads = 0;
    const load = async () => {
      loads += 1;
      return { title: 'hello' };
    };
    expect(await a.cache.get('article:1', load)).toEqual({ title: 'hello' });
    const before = await commands();
    expect(await a.cache.get('article:1', load)).toEqual({ title: 'hello' });
    expect((await commands()) - before).toBe(0);
    expect(await b.cache.get('article:1', load)).toEqual({ title: 'hello' });
    expect(loads).toBe(1);
    expect(a.cache.stats.l1Hits).toBe(1);
    expect(b.cache.stats.l2Hits).toBe(1);
    for (const key of await admin.keys('*')) expect(await admin.pttl(key), key).toBeGreaterThan(0);
  });

  it('reads a batch with one MGET and one load for what neither layer has', async () => {
    const a = await instance();
    const b = await instance();
    const batches: string[][] = [];
    const loadMany = async (ids: string[]) => {
      batches.push(ids);
      // id 'gone' does not exist: it is left out of the answer and not cached
      return new Map(ids.filter((id) => id !== 'gone').map((id) => [id, { id, v: 1 }]));
    };
    const tags = (x: { id: string }) => [`item:${x.id}`];
    const first = await a.cache.getMany(['1', '2', 'gone'], loadMany, tags);
    expect([...first.keys()].sort()).toEqual(['1', '2']);
    await a.cache.get('3', async () => ({ id: '3', v: 1 }), ['item:3']);
    // B: 1, 2 and 3 from L2 in one MGET, only 4 loaded
    const before = await commands();
    const second = await b.cache.getMany(['1', '2', '3', '4'], loadMany, tags);
    expect(second.get('3')).toEqual({ id: '3', v: 1 });
    expect(batches).toEqual([['1', '2', 'gone'], ['4']]);
    expect(b.cache.stats.l2Hits).toBe(3);
    const storeCommands = (await commands()) - before;
    // then all from B's L1: no Redis command at all
    const mid = await commands();
    await b.cache.getMany(['1', '2', '3', '4'], loadMany, tags);
    expect((await commands()) - mid).toBe(0);
    expect(storeCommands).toBeGreaterThan(0);
    // an invalidation on A reaches B's L1 for batch reads too
    await a.cache.invalidate({ tags: ['item:2'] });
    await sleep(50);
    const third = await b.cache.getMany(
      ['1', '2'],
      async (ids) => new Map(ids.map((id) => [id, { id, v: 2 }])),
      tags,
    );
    expect(third.get('2')).toEqual({ id: '2', v: 2 });
    expect(third.get('1')).toEqual({ id: '1', v: 1 });
  });

  it('never serves a stale value after an invalidation, on any instance (L1 dropped over pub/sub)', async () => {
    const a = await instance();
    const b = await instance();
    let version = 1;
    const load = async () => ({ version });
    await a.cache.get('article:2', load, ['article:2', 'articles']);
    await b.cache.get('article:2', load, ['article:2', 'articles']); // B's L1 is warm
    version = 2;
    await a.cache.invalidate({ tags: ['article:2'] });
    await sleep(50); // the bus message reaches B
    expect(await b.cache.get('article:2', load, ['article:2'])).toEqual({ version: 2 });
    expect(await a.cache.get('article:2', load, ['article:2'])).toEqual({ version: 2 });
  });

  // Content's cache client auto-pipelines (it sends what is issued in one tick in one write): the order
  // must hold with and without.
  it.each([false, true])(
    'sends the bus message only after the tombstones it announces are written (auto-pipelined: %s)',
    async (autoPipelining) => {
      // The message and the tombstones share a round trip. Redis reports each write as a keyspace event
      // and delivers a connection's events and messages in the order it ran them, so one subscriber to
      // both sees, for every message, the last write of each id it names (the tombstone) before it.
      const a = await instance({}, { autoPipelining });
      await admin.config('SET', 'notify-keyspace-events', 'E$');
      const listener = createRedisClient({
        url: server.url,
        role: 'cache',
        use: 'subscriber',
        name: 'listener',
        log: silent,
      });
      await listener.connect();
      clients.push(listener);
      const events: Array<{ set: string } | { ids: string[] }> = [];
      listener.on('message', (channel: string, message: string) => {
        if (channel === keys.cacheBus()) events.push({ ids: (JSON.parse(message) as { ids: string[] }).ids });
        else events.push({ set: message });
      });
      await listener.subscribe(keys.cacheBus(), '__keyevent@0__:set');
      try {
        for (let round = 0; round < 30; round++) {
          const tagged = [`list:${round}:a`, `list:${round}:b`];
          for (const id of tagged) await a.cache.get(id, async () => ({ id }), [`tag:${round}`]);
          await a.cache.invalidate({ ids: [`article:${round}`], tags: [`tag:${round}`] });
        }
        const messages = () => events.filter((e) => 'ids' in e).length;
        for (let waited = 0; messages() < 30 && waited < 5000; waited += 20) await sleep(20);
        expect(messages()).toBe(30);
        const lastSet = new Map<string, number>();
        for (const [i, e] of events.entries()) if ('set' in e) lastSet.set(e.set, i);
        for (const [i, e] of events.entries()) {
          if (!('ids' in e)) continue;
          expect(e.ids).toHaveLength(3);
          for (const id of e.ids) expect(lastSet.get(keys.cacheEntry('test', id)), id).toBeLessThan(i);
        }
      } finally {
        await admin.config('SET', 'notify-keyspace-events', '');
      }
    },
  );

  it('drops by tag exactly what L1 holds under it, in any order of reads, changes, evictions and flushes', async () => {
    // A model: each id's source has a version, and the tags of a value depend on it (a change can move an
    // entry to other tags). Flushing redis-cache leaves L1 alone with what it holds, so an invalidation
    // then finds no tag members in Redis and only L1's own index of tags can drop the stale entries.
    // With room for 3 of 6 ids, entries are evicted and replaced all along.
    const ids = ['a0', 'a1', 'a2', 'a3', 'a4', 'a5'];
    const tagsOf = (id: string, v: number) => {
      const n = Number(id.slice(1));
      return [`t${(n + v) % 4}`, `u${(n * v) % 3}`];
    };
    const op = fc.oneof(
      fc.record({ kind: fc.constant('get' as const), id: fc.constantFrom(...ids) }),
      fc.record({
        kind: fc.constant('change' as const),
        tag: fc.constantFrom('t0', 't1', 't2', 't3', 'u0', 'u1', 'u2'),
      }),
      fc.record({ kind: fc.constant('flush' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40, size: 'max' }), async (ops) => {
        await admin.flushall();
        const { cache } = await instance({ l1MaxEntries: 3, namespace: `m${randomUUID().slice(0, 6)}` });
        const version = new Map(ids.map((id) => [id, 0]));
        for (const o of ops) {
          if (o.kind === 'get') {
            const v = version.get(o.id) as number;
            const got = await cache.get(
              o.id,
              async () => ({ id: o.id, v }),
              (value) => tagsOf(value.id, value.v),
            );
            expect(got, `${o.id} after ${JSON.stringify(ops)}`).toEqual({ id: o.id, v });
          } else if (o.kind === 'change') {
            for (const id of ids) {
              const v = version.get(id) as number;
              if (tagsOf(id, v).includes(o.tag)) version.set(id, v + 1);
            }
            await cache.invalidate({ tags: [o.tag] });
          } else await admin.flushall();
        }
      }),
      { numRuns: 40 },
    );
  });

  it('does not put back a value loaded before an invalidation that happened during the load', async () => {
    const a = await instance();
    let release: () => void = () => {};
    const slowOld = () =>
      new Promise<{ v: string }>((resolve) => {
        release = () => resolve({ v: 'old' });
      });
    const reading = a.cache.get('article:3', slowOld, ['article:3']);
    await sleep(20);
    await a.cache.invalidate({ ids: ['article:3'] }); // the write commits while the read is loading
    release();
    expect(await reading).toEqual({ v: 'old' }); // that reader saw the old data...
    const fresh = await a.cache.get('article:3', async () => ({ v: 'new' }), ['article:3']);
    expect(fresh).toEqual({ v: 'new' }); // ...but it was not cached for anyone else
  });

  it('runs the loader once for 200 concurrent reads of a cold key across two instances', async () => {
    const a = await instance();
    const b = await instance();
    let loads = 0;
    const load = async () => {
      loads += 1;
      await sleep(100); // a slow query
      return { hot: true };
    };
    const reads = Array.from({ length: 200 }, (_, i) => (i % 2 ? a : b).cache.get('article:hot', load));
    expect(new Set((await Promise.all(reads)).map((v) => JSON.stringify(v)))).toEqual(
      new Set(['{"hot":true}']),
    );
    expect(loads).toBe(1);
  });

  it('serves the stale value within the grace when the loader fails, and fails after it', async () => {
    const a = await instance({ ttlMs: 100, graceMs: 400 });
    await a.cache.get('article:4', async () => ({ v: 1 }));
    await sleep(150); // expired, within grace
    const down = async () => {
      throw new Error('database down');
    };
    expect(await a.cache.get('article:4', down)).toEqual({ v: 1 });
    expect(a.cache.stats.staleServed).toBe(1);
    await sleep(500); // past the grace
    await expect(a.cache.get('article:4', down)).rejects.toThrow('database down');
  });

  it('answers from the loader while redis-cache is down, and recovers when it returns', async () => {
    const a = await instance();
    let loads = 0;
    const load = async () => {
      loads += 1;
      return { n: loads };
    };
    await server.stop();
    try {
      expect(await a.cache.get('article:5', load)).toEqual({ n: 1 });
      await a.cache.invalidate({ ids: ['article:5'] });
      expect(await a.cache.get('article:5', load)).toEqual({ n: 2 });
    } finally {
      await server.restart();
    }
    await ready(a.redis);
    await ready(admin);
    expect(await a.cache.get('article:5', load)).toEqual({ n: 3 });
    expect(await admin.exists(keys.cacheEntry('test', 'article:5'))).toBe(1);
  });

  it('does not cache values above the size bound, and counts them', async () => {
    const a = await instance({ maxValueBytes: 1000 });
    let loads = 0;
    const big = async () => {
      loads += 1;
      return { body: 'x'.repeat(5000) };
    };
    await a.cache.get('article:big', big);
    await a.cache.get('article:big', big);
    expect(loads).toBe(2);
    expect(a.cache.stats.tooLarge).toBe(2);
    expect(await admin.exists(keys.cacheEntry('test', 'article:big'))).toBe(0);
  });

  it('drops its whole L1 when the bus reconnects (invalidations may have been missed meanwhile)', async () => {
    const a = await instance();
    await a.cache.get('article:7', async () => ({ v: 1 }));
    await a.cache.get('article:7', async () => ({ v: 1 }));
    expect(a.cache.stats.l1Hits).toBe(1);
    await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await sleep(300); // the subscriber reconnects and resubscribes
    await a.cache.get('article:7', async () => ({ v: 1 }));
    expect(a.cache.stats.l1Hits).toBe(1);
    expect(a.cache.stats.l2Hits).toBe(1);
  });

  it('uses L1 again only once the bus delivers: a subscriber that says it is back but is not subscribed serves nothing stale', async () => {
    const a = await instance();
    const b = await instance();
    const bus = clients[clients.length - 1] as RedisClient; // b's subscriber
    let version = 0;
    const load = async () => ({ v: version });
    const write = async () => {
      version += 1;
      await a.cache.invalidate({ ids: ['article:9'], tags: [] });
    };
    await b.cache.get('article:9', load);
    // What ioredis can do on a cluster: report the subscription back while it is not. Here: leave the
    // channel, then drop the connection, so the client reconnects, says it is ready, and subscribes to
    // nothing.
    const id = await bus.client('ID');
    await bus.unsubscribe(keys.cacheBus());
    await admin.call('CLIENT', 'KILL', 'ID', String(id));
    const seen: number[] = [];
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      await write();
      await sleep(50); // the bus message reaches B, if B is subscribed
      const got = (await b.cache.get('article:9', load)) as { v: number };
      seen.push(got.v - version); // 0: fresh
    }
    expect(seen.filter((lag) => lag !== 0)).toEqual([]);
    // And it comes back: the probe makes it subscribe again, and then L1 serves.
    const hits = b.cache.stats.l1Hits;
    await b.cache.get('article:9', load);
    await b.cache.get('article:9', load);
    expect(b.cache.stats.l1Hits).toBeGreaterThan(hits);
    await write();
    await sleep(50); // the bus message reaches B
    expect(await b.cache.get('article:9', load)).toEqual({ v: version });
  });

  it('changes no answer when the whole cache instance is flushed', async () => {
    const a = await instance({ l1TtlMs: 1 });
    const load = async () => ({ v: 'db' });
    await a.cache.get('article:6', load);
    await admin.flushall();
    await sleep(5);
    expect(await a.cache.get('article:6', load)).toEqual({ v: 'db' });
  });
});
