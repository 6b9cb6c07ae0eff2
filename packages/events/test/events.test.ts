import { randomUUID } from 'node:crypto';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeEvent, encodeEvent, publishUserEvent } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const ada = {
  userId: randomUUID(),
  username: 'ada',
  email: 'ada@example.com',
  emailVerified: false,
  bio: null,
  image: null,
  occurredAt: new Date().toISOString(),
};

describe('event catalog', () => {
  it('encodes a valid payload and decodes it back', () => {
    const fields = encodeEvent('user.registered', ada);
    expect(fields.slice(0, 4)).toEqual(['type', 'user.registered', 'v', '2']);
    expect(decodeEvent(fields)).toEqual({ ok: true, type: 'user.registered', version: 2, payload: ada });
    const updated = encodeEvent('user.updated', { ...ada, emailVerified: true });
    expect(decodeEvent(updated)).toMatchObject({ ok: true, version: 2, payload: { emailVerified: true } });
  });

  it('still decodes the previous version (v1: no verification state, user.updated without the email)', () => {
    const { email: _e, emailVerified: _v, ...profile } = ada;
    const v1 = (type: string, payload: object) => ['type', type, 'v', '1', 'data', JSON.stringify(payload)];
    expect(decodeEvent(v1('user.updated', profile))).toEqual({
      ok: true,
      type: 'user.updated',
      version: 1,
      payload: profile,
    });
    expect(decodeEvent(v1('user.registered', { ...profile, email: ada.email }))).toMatchObject({
      ok: true,
      version: 1,
    });
    // A v1 shape sent as v2 is refused: v2 must say where to mail and whether the address is verified.
    expect(decodeEvent(['type', 'user.updated', 'v', '2', 'data', JSON.stringify(profile)])).toMatchObject({
      ok: false,
    });
  });

  it('refuses to encode a payload that does not match the schema', () => {
    const { emailVerified: _v, ...unverifiedUnknown } = ada;
    expect(() => encodeEvent('user.updated', unverifiedUnknown as never)).toThrow(
      /invalid user.updated v2 payload/,
    );
    expect(() => encodeEvent('user.registered', { ...ada, userId: 'not-a-uuid' })).toThrow(/userId/);
  });

  it('skips unknown types, versions it does not accept, and payloads that do not match', () => {
    expect(decodeEvent(['type', 'user.deleted', 'v', '1', 'data', '{}'])).toEqual({
      ok: false,
      reason: 'unknown event type "user.deleted"',
    });
    expect(decodeEvent(['type', 'user.updated', 'v', '3', 'data', '{}'])).toMatchObject({
      ok: false,
      reason: 'user.updated v3 is not accepted (current is v2)',
    });
    expect(decodeEvent(['type', 'user.updated', 'v', '1', 'data', '{"userId":1}'])).toMatchObject({
      ok: false,
    });
    expect(decodeEvent(['type', 'user.updated', 'v', '1', 'data', 'nope'])).toMatchObject({ ok: false });
  });
});

describe('publishing on a real redis-queue', () => {
  let server: RedisServer;
  let redis: RoleCheckedRedis;
  const keys = createKeys('ev');
  beforeAll(async () => {
    server = await RedisServer.start('queue');
    redis = await connectRedis({ url: server.url, role: 'queue', use: 'producer', name: 't', log: silent });
  });
  afterAll(async () => {
    await closeRedis(redis);
    await server.dispose();
  });

  it('appends to the user events stream, readable by a consumer group', async () => {
    await redis.xgroup('CREATE', keys.userEvents(), 'content', '$', 'MKSTREAM');
    const id = await publishUserEvent(redis, keys, 'user.registered', ada);
    const read = (await redis.xreadgroup(
      'GROUP',
      'content',
      'c1',
      'COUNT',
      10,
      'STREAMS',
      keys.userEvents(),
      '>',
    )) as Array<[string, Array<[string, string[]]>]>;
    const [entryId, fields] = read[0]?.[1][0] ?? [];
    expect(entryId).toBe(id);
    expect(decodeEvent(fields ?? [])).toMatchObject({ ok: true, payload: ada });
  });
});
