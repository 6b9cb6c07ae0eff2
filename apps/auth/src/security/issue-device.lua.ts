import { defineScript } from '@atoll/redis';

/**
 * issue-device.lua — records a new device cookie of an account, and keeps only the account's newest
 * live ones that were issued under its present credentials.
 *
 * KEYS[1]  the account's device cookies (a Sorted Set; member `<tokenHash>:<credentials>`, score the
 *          cookie's expiry in ms)
 * ARGV[1]  the new cookie's token hash
 * ARGV[2]  the account's credentials now (device-cookie.ts, `credentialsOf`)
 * ARGV[3]  now, in ms
 * ARGV[4]  the cookie's life, in ms
 * ARGV[5]  how many cookies an account keeps
 * Returns  how many were dropped (expired, of older credentials, or beyond the newest ARGV[5])
 *
 * One script, so two sign-ins at once cannot both keep more than the cap, and the Set always gets its
 * TTL (the life of its newest cookie) with the write that adds to it.
 */
const ISSUE_DEVICE_LUA = `
local now = tonumber(ARGV[3])
local life = tonumber(ARGV[4])
local dropped = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local suffix = ':' .. ARGV[2]
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(member, -string.len(suffix)) ~= suffix then
    dropped = dropped + redis.call('ZREM', KEYS[1], member)
  end
end
redis.call('ZADD', KEYS[1], now + life, ARGV[1] .. suffix)
dropped = dropped + redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[5]) + 1))
redis.call('PEXPIRE', KEYS[1], life)
return dropped
`;

export const ISSUE_DEVICE = defineScript<
  [tokenHash: string, credentials: string, nowMs: number, lifeMs: number, max: number],
  number
>({ name: 'issueDevice', lua: ISSUE_DEVICE_LUA, keys: ['devices'] });
