/**
 * Commands that touch several keys at once, made safe for Redis Cluster where they are built: a MULTI
 * (a transaction runs on one node, so on one slot) checks its keys with `assertOneSlot` before it is
 * even queued, and an MGET over keys of many slots is split into one MGET per slot. On atoll's single
 * servers and Sentinel groups both behave as before; the checks make every test say whether they would
 * still run on a cluster. Scripts are checked by `defineScript`.
 */
import { assertOneSlot, hashSlot } from '@atoll/redis-keys';
import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from './client.ts';

/** A MULTI over `keys`, which must share one slot (CrossSlotError otherwise); `what` names it in errors. */
export function oneSlotMulti(redis: RedisClient, what: string, keys: readonly string[]): ChainableCommander {
  assertOneSlot(`MULTI ${what}`, keys);
  return redis.multi();
}

/**
 * The values of `keys`, in order, like MGET: one MGET per slot, all sent in the same tick, since an MGET
 * across slots cannot run on a cluster. On one server they go out back to back on one connection (one
 * round trip, as a single MGET); on a cluster each goes to the node that holds its slot, all at once.
 * (Not one pipeline: an ioredis pipeline on a cluster may not span nodes.)
 */
export async function mgetAcrossSlots(
  redis: RedisClient,
  keys: readonly string[],
): Promise<Array<string | null>> {
  const bySlot = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = hashSlot(key);
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), i]);
  });
  const groups = [...bySlot.values()];
  const replies = await Promise.all(
    groups.map((indexes) => redis.mget(indexes.map((i) => keys[i] as string))),
  );
  const values = new Array<string | null>(keys.length).fill(null);
  groups.forEach((indexes, g) => {
    indexes.forEach((keyIndex, j) => {
      values[keyIndex] = replies[g]?.[j] ?? null;
    });
  });
  return values;
}
