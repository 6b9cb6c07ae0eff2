import { defineScript } from '@atoll/redis';

/**
 * store-unless-invalidated.lua — caches a loaded value unless the entry was invalidated meanwhile.
 *
 * KEYS[1]  the cache entry
 * ARGV[1]  the value (JSON)
 * ARGV[2]  its lifetime in ms (TTL + grace)
 * ARGV[3]  the tombstone the entry held when the load started, or ''
 * Returns  1 stored, 0 skipped because the entry was invalidated after the load started
 *
 * `invalidate` replaces an entry with a unique tombstone (`!t<random>`) that lives longer than any load
 * can take (the database's statement timeout). A loader that began before the invalidation finds a
 * tombstone it did not see at its start and does not put its possibly stale value back; a loader that
 * began after it (same tombstone) replaces it with fresh data.
 */
const STORE_UNLESS_INVALIDATED_LUA = `
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 2) == '!t' and current ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`;

export const STORE_UNLESS_INVALIDATED = defineScript<
  [json: string, lifetimeMs: number, seenTombstone: string],
  number
>({ name: 'storeUnlessInvalidated', lua: STORE_UNLESS_INVALIDATED_LUA, keys: ['cacheEntry'] });

export const isTombstone = (raw: string) => raw.startsWith('!t');
