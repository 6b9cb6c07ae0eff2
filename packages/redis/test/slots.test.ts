/**
 * The cluster slot rule on a real redis-server: defineScript (registration, EVALSHA after a SCRIPT FLUSH,
 * the slot check before each call) and the multi-key commands (MULTI checked, MGET split by slot).
 */
import { randomUUID } from 'node:crypto';
import { CrossSlotError, createKeys, hashSlot } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRedis,
  connectRedis,
  defineScript,
  mgetAcrossSlots,
  oneSlotMulti,
  type RoleCheckedRedis,
  registeredScripts,
} from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };

/** KEYS[1] and KEYS[2] set to ARGV[1]; returns how many keys it was given. */
const setBoth = defineScript<[value: string], number>({
  name: 'testSetBoth',
  lua: `for i = 1, #KEYS do redis.call('SET', KEYS[i], ARGV[1], 'PX', 60000) end return #KEYS`,
  keys: ['lock', 'lockFence'],
});

const countAll = defineScript<[], number>({
  name: 'testCountAll',
  lua: 'return #KEYS',
  keys: ['rateLimit'],
  repeatKeys: true,
  crossSlot: 'a test of the exception: counts keys of any slot',
});

describe('defineScript and multi-key commands', () => {
  let server: RedisServer;
  let redis: RoleCheckedRedis;
  const keys = createKeys(`s${randomUUID().slice(0, 6)}`);

  beforeAll(async () => {
    server = await RedisServer.start('queue');
    redis = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'script',
      log: silent,
    });
  });
  afterAll(async () => {
    await closeRedis(redis);
    await server.dispose();
  });

  it('runs a script whose keys share a slot, registering it on the client once', async () => {
    expect(await setBoth.run(redis, [keys.lock('a'), keys.lockFence('a')], 'v')).toBe(2);
    expect(await redis.get(keys.lockFence('a'))).toBe('v');
    expect(await setBoth.run(redis, [keys.lock('b'), keys.lockFence('b')], 'w')).toBe(2);
  });

  it('loads the script again when the server has forgotten it (EVALSHA, then EVAL)', async () => {
    await redis.script('FLUSH');
    expect(await setBoth.run(redis, [keys.lock('c'), keys.lockFence('c')], 'x')).toBe(2);
    expect(await redis.get(keys.lock('c'))).toBe('x');
  });

  it('refuses keys of different slots before anything reaches Redis', async () => {
    const apart = [keys.lock('one'), keys.lockFence('two')];
    await expect(setBoth.run(redis, apart, 'y')).rejects.toThrow(CrossSlotError);
    await expect(setBoth.run(redis, apart, 'y')).rejects.toThrow(
      /script testSetBoth touches keys in different cluster slots/,
    );
    expect(await redis.exists(keys.lock('one'), keys.lockFence('two'))).toBe(0);
  });

  it('refuses a wrong number of keys', async () => {
    await expect(setBoth.run(redis, [keys.lock('d')], 'z')).rejects.toThrow(/takes 2 keys, got 1/);
    await expect(countAll.run(redis, [])).rejects.toThrow(/at least 1 keys, got 0/);
  });

  it('lets a declared exception through, and queues on a pipeline of a registered client', async () => {
    const apart = [keys.rateLimit('anonymous', 'a'), keys.rateLimit('address', 'a')];
    expect(await countAll.run(redis, apart)).toBe(2);
    setBoth.register(redis);
    const pipeline = redis.pipeline();
    setBoth.queue(pipeline, [keys.lock('e'), keys.lockFence('e')], 'p');
    expect(() => setBoth.queue(pipeline, [keys.lock('e'), keys.lockFence('f')], 'p')).toThrow(CrossSlotError);
    expect(await pipeline.exec()).toEqual([[null, 2]]);
  });

  it('keeps every script in the registry, and refuses two scripts of one name', () => {
    expect(registeredScripts().map((s) => s.name)).toEqual(
      expect.arrayContaining(['testSetBoth', 'testCountAll']),
    );
    expect(() => defineScript({ name: 'testSetBoth', lua: 'return 0', keys: ['lock'] })).toThrow(
      /two different/,
    );
    expect(() => defineScript({ name: 'get', lua: 'return 0', keys: ['lock'] })).toThrow(/ioredis method/);
  });

  it('runs a MULTI over keys of one slot, and refuses one across slots before queueing anything', async () => {
    const [fav, ver] = [keys.favoritesOf('u1'), keys.relationsVersion('u1')];
    expect(await oneSlotMulti(redis, 'relations', [fav, ver]).sadd(fav, 'a').incr(ver).exec()).toEqual([
      [null, 1],
      [null, 1],
    ]);
    expect(() => oneSlotMulti(redis, 'relations', [fav, keys.relationsVersion('u2')])).toThrow(
      CrossSlotError,
    );
    expect(() => oneSlotMulti(redis, 'relations', [fav, keys.relationsVersion('u2')])).toThrow(
      /MULTI relations touches keys in different cluster slots/,
    );
  });

  it('reads keys of many slots in order, missing ones as null, with one MGET per slot', async () => {
    const ids = ['a', 'b', 'c', 'd', 'e'];
    const entries = ids.map((id) => keys.cacheEntry('test', id));
    expect(new Set(entries.map(hashSlot)).size).toBeGreaterThan(1);
    await Promise.all(entries.slice(0, 4).map((key, i) => redis.set(key, `v${i}`, 'PX', 60_000)));
    expect(await mgetAcrossSlots(redis, entries)).toEqual(['v0', 'v1', 'v2', 'v3', null]);
    expect(await mgetAcrossSlots(redis, [entries[2] as string, entries[2] as string])).toEqual(['v2', 'v2']);
    expect(await mgetAcrossSlots(redis, [])).toEqual([]);
  });
});
