import { defineScript } from '@atoll/redis';

/**
 * The lock's Lua scripts. Each runs atomically on the server, so no other client can act between its
 * check and its write (a GET followed by a DEL from the client could delete a lock that changed hands in
 * between). Both keys of a lock share one hash tag, so the scripts also run on Redis Cluster.
 */

/**
 * acquire — takes the lease if it is free and hands out the next fencing token.
 *
 * KEYS[1]  the lease (String, holds the holder's random token)
 * KEYS[2]  the fencing counter (String, only ever incremented)
 * ARGV[1]  the holder's random token
 * ARGV[2]  the lease time in milliseconds
 * Returns  the fencing token (>= 1) when acquired, 0 when someone else holds the lease
 */
const ACQUIRE_LUA = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
`;

/**
 * release — deletes the lease only if it still holds our token.
 *
 * KEYS[1]  the lease
 * ARGV[1]  our token
 * Returns  1 when released, 0 when the lease had expired or belongs to someone else (left untouched)
 */
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
`;

/**
 * extend — pushes the lease's expiry out, only if it still holds our token.
 *
 * KEYS[1]  the lease
 * ARGV[1]  our token
 * ARGV[2]  the new lease time in milliseconds, from now
 * Returns  1 when extended, 0 when the lease is no longer ours
 */
const EXTEND_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
`;

/** What ACQUIRE, RELEASE and EXTEND return when the lease is not ours. */
export const NOT_HELD = 0;

export const ACQUIRE = defineScript<[token: string, ttlMs: number], number>({
  name: 'lockAcquire',
  lua: ACQUIRE_LUA,
  keys: ['lock', 'lockFence'],
});

/** Every lease in atoll is released with it: the locks', the cache's loads' and the rankings' rebuilds'. */
export const RELEASE = defineScript<[token: string], number>({
  name: 'leaseRelease',
  lua: RELEASE_LUA,
  keys: [['lock', 'cacheLease', 'rebuildLease']],
});

export const EXTEND = defineScript<[token: string, ttlMs: number], number>({
  name: 'lockExtend',
  lua: EXTEND_LUA,
  keys: ['lock'],
});
