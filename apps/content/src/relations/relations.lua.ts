import { defineScript } from '@atoll/redis';

/**
 * The scripts behind the relation keys (relations.ts). Every key of one user shares the hash tag
 * `{<userId>}`, so each script touches one slot.
 */

/**
 * read-set.lua — which of the members are in the set, or nil when the set is absent (to be rebuilt).
 *
 * KEYS[1]  the set;  ARGV  the members asked about
 */
const READ_SET_LUA = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
return redis.call('SMISMEMBER', KEYS[1], unpack(ARGV))
`;

export const READ_SET = defineScript<string[], number[] | null>({
  name: 'relReadSet',
  lua: READ_SET_LUA,
  keys: [['favoritesOf', 'followingOf']],
});

/**
 * rebuild.lua — stores what was loaded from PostgreSQL, unless a change happened since the load began.
 *
 * KEYS[1]  the set or list;  KEYS[2]  the user's relations version
 * ARGV[1]  the version read before the load ('' if none);  ARGV[2]  lifetime in ms;  ARGV[3]  'set' or
 *          'list';  ARGV[4..]  the members (a set also gets the '' member: it marks the set complete,
 *          so that "follows nobody" is cached too)
 * Returns  1 stored, 0 skipped (a change raced the load: the next read rebuilds again)
 */
const REBUILD_LUA = `
local current = redis.call('GET', KEYS[2]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if ARGV[3] == 'set' then
  redis.call('SADD', KEYS[1], '', unpack(ARGV, 4))
elseif #ARGV >= 4 then
  redis.call('RPUSH', KEYS[1], unpack(ARGV, 4))
else
  return 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

export const REBUILD = defineScript<
  [seen: string, ttlMs: number, kind: 'set' | 'list', ...members: string[]],
  number
>({
  name: 'relRebuild',
  lua: REBUILD_LUA,
  keys: [['favoritesOf', 'followingOf', 'activityOf'], 'relationsVersion'],
});

/**
 * change.lua — applies a committed change to a relation key, and bumps the version so that a rebuild
 * which loaded before the change is not stored. A set is deleted (rebuilt from PostgreSQL by its next
 * reader): two changes of one flag (a favorite and an unfavorite in flight together) may reach Redis in
 * the opposite order of their commits, and an add or remove applied in that order would leave the flag
 * wrong until the TTL. A list (activity) gets its entry on top while it exists.
 *
 * KEYS[1]  the set or list;  KEYS[2]  the version
 * ARGV[1]  'lpush' or 'del';  ARGV[2]  for 'lpush', the entry;  ARGV[3]  the version's lifetime in ms;
 *          ARGV[4]  for 'lpush', the list's length bound
 * Returns  1 if the key existed (or was deleted), 0 if absent (nothing written but the version)
 */
const CHANGE_LUA = `
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if ARGV[1] == 'del' then redis.call('DEL', KEYS[1]) return 1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[2])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[4]) - 1)
return 1
`;

export const CHANGE = defineScript<
  [op: 'lpush' | 'del', entry: string, ttlMs: number, bound: number],
  number
>({
  name: 'relChange',
  lua: CHANGE_LUA,
  keys: [['favoritesOf', 'followingOf', 'activityOf'], 'relationsVersion'],
});
