/**
 * A short lease: "only one of us does this for the next few seconds" (one loader per cache entry, one
 * rebuild of a ranking), without the lock's fencing counter or auto-extension. It is the lock's idiom
 * made cheap: `SET key token NX PX ttl` with a random token (one round trip, no script), and a release
 * that deletes the key only while it still holds that token (the lock's RELEASE script), so a holder
 * that outlived its lease never deletes the next holder's.
 */
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '@atoll/redis';
import { NOT_HELD, RELEASE } from './scripts.ts';

export interface ShortLease {
  readonly key: string;
  /** Deletes the lease if it is still ours; true when it was. */
  release(): Promise<boolean>;
}

/** Takes the lease `key` for `ttlMs` if it is free; null when someone else holds it. */
export async function tryLease(redis: RedisClient, key: string, ttlMs: number): Promise<ShortLease | null> {
  const token = randomBytes(16).toString('base64url');
  if ((await redis.set(key, token, 'PX', ttlMs, 'NX')) !== 'OK') return null;
  return {
    key,
    release: async () => Number(await RELEASE.run(redis, [key], token)) !== NOT_HELD,
  };
}
