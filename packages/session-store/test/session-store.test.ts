import { createHash, randomUUID } from 'node:crypto';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken, SessionStore } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const timeouts = { idleMs: 60_000, absoluteMs: 300_000, refreshMs: 10_000 };

describe('hashToken', () => {
  it('names a session as every earlier version did: the SHA-256 hex of the token, its first 32 digits as id', () => {
    // Sessions stored before an upgrade are found after it only if these bytes never change.
    for (const token of ['a', randomUUID(), 'x'.repeat(43), 'tôken-ü']) {
      const digest = createHash('sha256').update(token, 'utf8').digest('hex');
      expect(hashToken(token)).toEqual({ id: digest.slice(0, 32), verifier: digest });
    }
  });
});

describe('SessionStore on a real redis-session', () => {
  let server: RedisServer;
  let redis: RoleCheckedRedis;
  const keys = createKeys(`t${randomUUID().slice(0, 8)}`);
  let clock = 1_000_000;
  let store: SessionStore;
  const alice = {
    userId: 'u-alice',
    username: 'alice',
    roles: ['user'],
    userAgent: 'vitest',
    ip: '127.0.0.1',
  };

  beforeAll(async () => {
    server = await RedisServer.start('session');
    redis = await connectRedis({
      url: server.url,
      role: 'session',
      use: 'producer',
      name: 'test',
      log: silent,
    });
    store = new SessionStore(redis, keys, timeouts, () => clock);
  });
  afterAll(async () => {
    await closeRedis(redis);
    await server.dispose();
  });

  it('stores a hashed record with a TTL and resolves the token', async () => {
    const { token, session } = await store.create(alice);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const key = keys.session(hashToken(token).id);
    expect(await redis.pttl(key)).toBeGreaterThan(59_000);
    expect(await redis.pttl(keys.userSessions('u-alice'))).toBeGreaterThan(299_000);
    // Nothing in Redis contains the token itself.
    const dump = JSON.stringify([await redis.keys(`${keys.prefix}:*`), await redis.hgetall(key)]);
    expect(dump).not.toContain(token);
    expect(await store.resolve(token)).toMatchObject({ ...alice, id: session.id, createdAt: clock });
  });

  it('rejects unknown and malformed tokens without a match', async () => {
    expect(await store.resolve('A'.repeat(43))).toBeNull();
    expect(await store.resolve('short')).toBeNull();
    expect(await store.resolve('')).toBeNull();
  });

  it('slides the idle timeout at most once per refresh interval', async () => {
    const { token } = await store.create(alice);
    const key = keys.session(hashToken(token).id);
    await redis.pexpire(key, 30_000);
    clock += 5_000; // within the refresh interval: no write
    await store.resolve(token);
    expect(await redis.pttl(key)).toBeLessThanOrEqual(30_000);
    clock += 10_000; // refresh due: TTL back to the idle timeout
    const s = await store.resolve(token);
    expect(s?.lastSeenAt).toBe(clock);
    expect(await redis.pttl(key)).toBeGreaterThan(59_000);
  });

  it('ends a session at the absolute timeout even when it is used', async () => {
    const { token } = await store.create(alice);
    clock += 300_000;
    expect(await store.resolve(token)).toBeNull();
    expect(await redis.exists(keys.session(hashToken(token).id))).toBe(0);
  });

  it('lists, revokes one, and logs out everywhere', async () => {
    const bob = { ...alice, userId: `u-${randomUUID()}`, username: 'bob' };
    const a = await store.create(bob);
    clock += 1;
    const b = await store.create(bob);
    clock += 1;
    const c = await store.create(bob);
    expect((await store.list(bob.userId)).map((s) => s.id)).toEqual([
      c.session.id,
      b.session.id,
      a.session.id,
    ]);
    expect(await store.destroyById(bob.userId, b.session.id)).toBe(true);
    expect(await store.resolve(b.token)).toBeNull();
    expect(await store.destroyAll(bob.userId, c.session.id)).toBe(1);
    expect(await store.resolve(a.token)).toBeNull();
    expect(await store.resolve(c.token)).not.toBeNull();
    await store.destroy(c.token);
    expect(await store.list(bob.userId)).toEqual([]);
  });

  it('prunes index entries whose record expired', async () => {
    const carol = { ...alice, userId: `u-${randomUUID()}`, username: 'carol' };
    const { session } = await store.create(carol);
    await redis.del(keys.session(session.id));
    expect(await store.list(carol.userId)).toEqual([]);
    expect(await redis.scard(keys.userSessions(carol.userId))).toBe(0);
  });

  it('keeps every session it creates in the index while the index is listed (and pruned) at the same time', async () => {
    // A listing prunes index entries without a record; a session being created has one a round trip
    // after its entry. Whichever order they meet in, every live session stays listed, so that "log out
    // everywhere" and a credential change reach it.
    for (let round = 0; round < 40; round += 1) {
      const user = { ...alice, userId: `u-${randomUUID()}` };
      let creating = true;
      const lists = (async () => {
        while (creating) await store.list(user.userId);
      })();
      const created = await Promise.all(Array.from({ length: 4 }, () => store.create(user)));
      creating = false;
      await lists;
      const indexed = await redis.smembers(keys.userSessions(user.userId));
      for (const { session } of created) expect(indexed, `round ${round}`).toContain(session.id);
      expect(await store.destroyAll(user.userId)).toBe(4);
      for (const { token } of created) expect(await store.resolve(token)).toBeNull();
    }
  });

  it('caps the live sessions per user: one more ends the oldest', async () => {
    const capped = new SessionStore(redis, keys, timeouts, () => clock, { maxPerUser: 2 });
    const dan = { ...alice, userId: `u-${randomUUID()}`, username: 'dan' };
    const first = await capped.create(dan);
    clock += 1;
    const second = await capped.create(dan);
    clock += 1;
    const third = await capped.create(dan);
    expect((await capped.list(dan.userId)).map((s) => s.id)).toEqual([third.session.id, second.session.id]);
    expect(await capped.resolve(first.token)).toBeNull();
    expect(await capped.resolve(third.token)).not.toBeNull();
  });

  it('indexes the holders of a tracked role, with a TTL, and finds a session by id', async () => {
    const tracking = new SessionStore(redis, keys, timeouts, () => clock, { trackedRoles: ['admin'] });
    const erin = { ...alice, userId: `u-${randomUUID()}`, username: 'erin', roles: ['user', 'admin'] };
    const frank = { ...alice, userId: `u-${randomUUID()}`, username: 'frank' };
    const { session } = await tracking.create(erin);
    await tracking.create(frank);
    expect(await tracking.roleHolders('admin')).toContain(erin.userId);
    expect(await tracking.roleHolders('admin')).not.toContain(frank.userId);
    expect(await redis.pttl(keys.roleHolders('admin'))).toBeGreaterThan(0);
    await tracking.updateIdentity(frank.userId, { username: 'frank', roles: ['user', 'admin'] });
    expect(await tracking.roleHolders('admin')).toContain(frank.userId);
    await tracking.forgetRoleHolder('admin', erin.userId);
    expect(await tracking.roleHolders('admin')).not.toContain(erin.userId);
    expect((await tracking.find(erin.userId, session.id))?.createdAt).toBe(session.createdAt);
    expect(await tracking.find(frank.userId, session.id)).toBeNull();
  });
});
