import { defineScript } from '@atoll/redis';

/**
 * update-if-present.lua — changes a member's score only while the ranking exists.
 *
 * KEYS[1]  the ranking (a Sorted Set on the cache instance)
 * ARGV[1]  'incr' or 'set'
 * ARGV[2]  the member
 * ARGV[3]  the increment or the score
 * Returns  1 if the ranking existed and was changed, 0 if it is absent (nothing is written)
 *
 * A ranking that was evicted or expired must not come back as a one-member set without a TTL: it is
 * rebuilt whole from PostgreSQL on the next read instead.
 */
const UPDATE_IF_PRESENT_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'incr' then
  redis.call('ZINCRBY', KEYS[1], ARGV[3], ARGV[2])
else
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
end
return 1
`;

export const UPDATE_IF_PRESENT = defineScript<[op: 'incr' | 'set', member: string, value: string], number>({
  name: 'updateIfPresent',
  lua: UPDATE_IF_PRESENT_LUA,
  keys: ['ranking'],
});
