import type { RedisClient } from '@atoll/redis';

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
export const COUNT_FAILURE = `
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
export const GIVE_BACK = `
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('DECR', KEYS[1])
end
return 0
`;

/** A client with the two counter scripts as commands. */
export type CounterRedis = RedisClient & {
  countFailure(key: string, windowMs: number): Promise<[number, number]>;
  giveBack(key: string): Promise<number>;
};

/** Registers the counter scripts on a client (once); every counter of auth counts with them. */
export function withCounterScripts(redis: RedisClient): CounterRedis {
  if (!('countFailure' in redis))
    redis.defineCommand('countFailure', { numberOfKeys: 1, lua: COUNT_FAILURE });
  if (!('giveBack' in redis)) redis.defineCommand('giveBack', { numberOfKeys: 1, lua: GIVE_BACK });
  return redis as CounterRedis;
}
