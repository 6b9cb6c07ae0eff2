/** Multi-key commands on a real redis-server: MULTI checked for one slot, MGET split by slot. */
import { randomUUID } from 'node:crypto';
import { CrossSlotError, createKeys, hashSlot } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRedis,
  connectRedis,
  mgetAcrossSlots,
  oneSlotMulti,
  type RoleCheckedRedis,
} from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('multi-key commands', () => {
  let server: RedisServer;
  let redis: RoleCheckedRedis;
  const keys = createKeys(`m${randomUUID().slice(0, 6)}`);

  beforeAll(async () => {
    server = await RedisServer.start('cache');
    redis = await connectRedis({
      url: server.url,
      role: 'cache',
      use: 'producer',
      name: 'multi',
      log: silent,
    });
  });
  afterAll(async () => {
    await closeRedis(redis);
    await server.dispose();
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
