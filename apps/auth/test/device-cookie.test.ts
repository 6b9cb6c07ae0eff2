/** Device cookies on a real redis-session: bound to the account id and its password hash, and capped. */
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeviceCookies } from '../src/security/device-cookie.ts';

describe('DeviceCookies', () => {
  let server: RedisServer;
  let redis: Redis;
  const keys = createKeys('dc');
  let devices: DeviceCookies;
  let now = 1_000_000;

  beforeAll(async () => {
    server = await RedisServer.start('session');
    redis = new Redis(server.url);
    devices = new DeviceCookies(
      redis,
      keys,
      { name: 'atoll_device', secure: false, ttlS: 60, maxPerAccount: 3 },
      () => now,
    );
  });
  afterAll(async () => {
    redis.disconnect();
    await server.dispose();
  });

  it('trusts a cookie for the account and password it was issued under only', async () => {
    const ada = { id: 'u-ada', password_hash: '$argon2id$one' };
    const token = await devices.issue(ada);
    expect(await devices.trusted(token, ada)).toMatch(/^[0-9a-f]{64}$/);
    // Another account (say, one registered later at the same address) and a new password: untrusted.
    expect(await devices.trusted(token, { id: 'u-other', password_hash: ada.password_hash })).toBeNull();
    expect(await devices.trusted(token, { ...ada, password_hash: '$argon2id$two' })).toBeNull();
    expect(await devices.trusted(token, { ...ada, password_hash: null })).toBeNull();
    expect(await devices.trusted(null, ada)).toBeNull();
    // Expired: untrusted, and the account's Set carries a TTL.
    expect(await redis.pttl(keys.devices(ada.id))).toBeGreaterThan(0);
    now += 61_000;
    expect(await devices.trusted(token, ada)).toBeNull();
  });

  it('keeps the newest `maxPerAccount` of an account, and drops those of older credentials', async () => {
    const bob = { id: 'u-bob', password_hash: '$argon2id$bob' };
    const tokens: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      now += 1;
      tokens.push(await devices.issue(bob));
    }
    const trusted = await Promise.all(tokens.map((t) => devices.trusted(t, bob)));
    expect(trusted.map((t) => t !== null)).toEqual([false, false, true, true, true]);
    expect(await redis.zcard(keys.devices(bob.id))).toBe(3);
    // After a new password the next issue leaves only its own cookie.
    const changed = { ...bob, password_hash: '$argon2id$bob2' };
    now += 1;
    const fresh = await devices.issue(changed);
    expect(await redis.zcard(keys.devices(bob.id))).toBe(1);
    expect(await devices.trusted(fresh, changed)).not.toBeNull();
  });
});
