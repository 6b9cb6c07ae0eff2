import { defineScript } from '@atoll/redis';

/**
 * check-code.lua — checks a submitted verification code against the stored hash, counting attempts.
 *
 * KEYS[1]  the code record (Hash: h = hash of the code, attempts)
 * ARGV[1]  the hash of the submitted code
 * ARGV[2]  the number of attempts allowed
 * Returns   1  right code: the record is deleted (single use)
 *           0  wrong code: the attempt is counted (the record keeps its TTL)
 *          -1  no code pending (never sent, expired, or already used)
 *          -2  wrong code and no attempts left: the record is deleted
 */
const CHECK_CODE_LUA = `
local stored = redis.call('HGET', KEYS[1], 'h')
if not stored then return -1 end
if stored == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
if attempts >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[1])
  return -2
end
return 0
`;

export const CHECK_CODE = defineScript<[codeHash: string, attemptsAllowed: number], number>({
  name: 'checkCode',
  lua: CHECK_CODE_LUA,
  keys: ['verificationCode'],
});

export const CODE_RESULT = { RIGHT: 1, WRONG: 0, NONE: -1, USED_UP: -2 } as const;
