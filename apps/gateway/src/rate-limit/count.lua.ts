/**
 * count.lua — counts one request in a fixed window and returns the count and the time left.
 *
 * KEYS[1]  the counter (a String, built by @atoll/redis-keys `rateLimit`)
 * ARGV[1]  the window in milliseconds
 * Returns  { count, pttl }
 *
 * The increment and the expiry are one atomic step: a process killed between an INCR and an EXPIRE
 * (the seed's way) can leave a counter that never expires and blocks its caller for good; here the
 * script either runs whole or not at all. A counter found without a TTL (written by anything else) is
 * given one too, so every counter this script touches expires.
 */
export const COUNT_BODY = `
local function count(key, window)
  local current = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, window)
    ttl = tonumber(window)
  end
  return current, ttl
end
`;

export const COUNT = `${COUNT_BODY}
local current, ttl = count(KEYS[1], ARGV[1])
return { current, ttl }
`;

/**
 * count-many.lua — counts one request on several counters at once (the tiers of one request), each in
 * its own fixed window, in one round trip.
 *
 * KEYS[i]  the counters (Strings, built by @atoll/redis-keys `rateLimit`)
 * ARGV[i]  the window of KEYS[i], ms
 * Returns  { count1, pttl1, count2, pttl2, ... }
 *
 * The counters sit in different hash slots: like resolve-and-count below, this runs on one
 * redis-session server or a Sentinel group; on a cluster counter.ts counts each with COUNT.
 */
export const COUNT_MANY = `${COUNT_BODY}
local out = {}
for i = 1, #KEYS do
  local current, ttl = count(KEYS[i], ARGV[i])
  out[#out + 1] = current
  out[#out + 1] = ttl
end
return out
`;

/**
 * resolve-and-count.lua — the hot path of an authenticated request in one round trip: reads the session
 * record, counts the request against the caller's tier, and against its client address's ceiling.
 *
 * KEYS[1]  the session record (Hash, `sess:{<id>}`)
 * KEYS[2]  the anonymous counter of the client address, used when there is no such session
 * KEYS[3]  the address counter of the client address (every request counts there, signed in or not)
 * ARGV[1]  the user counter's key up to the user id (`<prefix>:rl:{user:`)
 * ARGV[2]  the user counter's key after the user id (`}`)
 * ARGV[3]  the user window, ms
 * ARGV[4]  the anonymous window, ms
 * ARGV[5]  the address window, ms
 * Returns  { record (HGETALL as a flat list), tier ('user' or 'anonymous'), count, pttl,
 *            address count, address pttl }
 *
 * Why a key built inside the script: the user is known only once the record is read, and a second round
 * trip on every request is what this script exists to avoid. The user counter is built from the same
 * pattern as @atoll/redis-keys `rateLimit('user', id)`. On a Redis Cluster it sits in another slot than
 * the record, so this script runs on one redis-session server or a Sentinel group only; on a cluster
 * counter.ts reads the record and counts in two round trips instead (`readSessionThenCount`). The record is only read here: its checks and the idle refresh
 * stay in @atoll/session-store (`accept`).
 */
export const RESOLVE_AND_COUNT = `${COUNT_BODY}
local record = redis.call('HGETALL', KEYS[1])
local userId = nil
for i = 1, #record, 2 do
  if record[i] == 'userId' then userId = record[i + 1] end
end
local tier, key, window = 'anonymous', KEYS[2], ARGV[4]
if userId then
  tier, key, window = 'user', ARGV[1] .. userId .. ARGV[2], ARGV[3]
end
local current, ttl = count(key, window)
local addressCurrent, addressTtl = count(KEYS[3], ARGV[5])
return { record, tier, current, ttl, addressCurrent, addressTtl }
`;
