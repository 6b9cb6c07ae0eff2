/**
 * Commands that touch several keys at once, made safe for Redis Cluster where they are built: a MULTI
 * (a transaction runs on one node, so on one slot) checks its keys with `assertOneSlot` before it is
 * even queued, and an MGET over keys of many slots is split into one MGET per slot. On atoll's single
 * servers and Sentinel groups both behave as before; the checks make every test say whether they would
 * still run on a cluster. Scripts are checked by `defineScript`.
 */
import { assertOneSlot, hashSlot } from '@atoll/redis-keys';
import type { ChainableCommander, Redis } from 'ioredis';

/** A MULTI over `keys`, which must share one slot (CrossSlotError otherwise); `what` names it in errors. */
export function oneSlotMulti(redis: Redis, what: string, keys: readonly string[]): ChainableCommander {
  assertOneSlot(`MULTI ${what}`, keys);
  return redis.multi();
}

/**
 * The values of `keys`, in order, like MGET: one MGET per slot, all in one pipeline (one round trip, as
 * a single MGET), since an MGET across slots cannot run on a cluster.
 */
export async function mgetAcrossSlots(redis: Redis, keys: readonly string[]): Promise<Array<string | null>> {
  const bySlot = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = hashSlot(key);
    bySlot.set(slot, [...(bySlot.get(slot) ?? []), i]);
  });
  const groups = [...bySlot.values()];
  const pipeline = redis.pipeline();
  for (const indexes of groups) pipeline.mget(indexes.map((i) => keys[i] as string));
  const replies = (await pipeline.exec()) ?? [];
  const values = new Array<string | null>(keys.length).fill(null);
  groups.forEach((indexes, g) => {
    const [err, got] = replies[g] ?? [new Error('MGET: no reply'), null];
    if (err) throw err;
    indexes.forEach((keyIndex, j) => {
      values[keyIndex] = (got as Array<string | null>)[j] ?? null;
    });
  });
  return values;
}
