import { defineScript, type RedisClient } from '@atoll/redis';

/**
 * count-failure.lua — counts one failed attempt in a fixed window and returns the count and the time left.
 *
 * KEYS[1]  the counter (a String)
 * ARGV[1]  the window in milliseconds
 * Returns  { count, pttl }
 *
 * The counter is incremented and given its expiry in one atomic step, so no process dying between an
 * INCR and an EXPIRE can leave a counter that never expires; a counter found without a TTL (written by
 * anything else) gets one too.
 */
const COUNT_FAILURE_LUA = `
local count = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { count, ttl }
`;

/**
 * give-back.lua — takes one attempt back from a counter that still exists (a right secret was no
 * failure). DECR keeps the key's TTL; a counter that expired meanwhile is left alone, never re-created
 * without one.
 *
 * KEYS[1]  the counter (a String)
 * Returns  the new count, or 0 when the counter had expired
 */
const GIVE_BACK_LUA = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
`;

/** Every counter of auth: failed sign-ins, mail caps, password changes, sign-ups. */
const COUNTERS = ['loginFailures', 'mailCap', 'passwordChanges', 'signups'] as const;

const COUNT_FAILURE = defineScript<[windowMs: number], [number, number]>({
  name: 'countFailure',
  lua: COUNT_FAILURE_LUA,
  keys: [COUNTERS],
});

const GIVE_BACK = defineScript<[], number>({ name: 'giveBack', lua: GIVE_BACK_LUA, keys: [COUNTERS] });

/** Counts one attempt on `key` in a window of `windowMs`: the count and the time left, in ms. */
export const countFailure = (redis: RedisClient, key: string, windowMs: number) =>
  COUNT_FAILURE.run(redis, [key], windowMs);

/** Takes one attempt back from `key`, if it still exists; the new count (0 when it had expired). */
export const giveBack = (redis: RedisClient, key: string) => GIVE_BACK.run(redis, [key]);
