import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  IDENTITY_HEADER,
  identityPlugin,
  ReplayGuard,
  requireIdentity,
  signIdentity,
  verifyIdentity,
} from '../src/index.ts';

const secret = 's'.repeat(32);
const alice = { userId: 'u1', username: 'alice', sessionId: 'abc', roles: ['user'] };

describe('identity assertion', () => {
  it('round-trips for the request it was issued for', () => {
    const token = signIdentity(alice, { secret, requestId: 'r1', clientIp: '203.0.113.9' });
    expect(verifyIdentity(token, { secrets: [secret], requestId: 'r1' })).toEqual({
      ok: true,
      identity: alice,
      clientIp: '203.0.113.9',
    });
    const anonymous = signIdentity(null, { secret, requestId: 'r2', clientIp: '2001:db8::1' });
    expect(verifyIdentity(anonymous, { secrets: [secret], requestId: 'r2' })).toEqual({
      ok: true,
      identity: null,
      clientIp: '2001:db8::1',
    });
  });

  it('rejects a forged or tampered assertion', () => {
    const forged = signIdentity(alice, { secret: 'f'.repeat(32), requestId: 'r1', clientIp: '203.0.113.9' });
    expect(verifyIdentity(forged, { secrets: [secret], requestId: 'r1' })).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    const [v, payload, mac] = signIdentity(alice, { secret, requestId: 'r1', clientIp: '203.0.113.9' }).split(
      '.',
    );
    const admin = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()), roles: ['admin'] }),
    ).toString('base64url');
    expect(verifyIdentity(`${v}.${admin}.${mac}`, { secrets: [secret], requestId: 'r1' }).ok).toBe(false);
    expect(verifyIdentity('not-a-token', { secrets: [secret], requestId: 'r1' })).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('rejects an expired assertion and one replayed on another request', () => {
    const token = signIdentity(alice, {
      secret,
      requestId: 'r1',
      clientIp: '203.0.113.9',
      ttlSeconds: 30,
      now: 1_000_000,
    });
    expect(verifyIdentity(token, { secrets: [secret], requestId: 'r1', now: 1_000_000 + 36_000 })).toEqual({
      ok: false,
      reason: 'expired',
    });
    expect(verifyIdentity(token, { secrets: [secret], requestId: 'r2', now: 1_000_000 })).toEqual({
      ok: false,
      reason: 'wrong-request',
    });
  });

  it('accepts the previous secret during a rotation', () => {
    const old = 'o'.repeat(32);
    const token = signIdentity(alice, { secret: old, requestId: 'r1', clientIp: '203.0.113.9' });
    expect(verifyIdentity(token, { secrets: [secret, old], requestId: 'r1' }).ok).toBe(true);
  });
});

describe('identity plugin', () => {
  const build = async () => {
    const app = Fastify({ requestIdHeader: 'x-request-id' });
    await app.register(identityPlugin, { secrets: [secret] });
    app.get('/me', async (request) => requireIdentity(request));
    app.get('/public', async (request) => ({ anonymous: request.identity === null, ip: request.clientIp }));
    app.setErrorHandler(
      (err: Error & { statusCode?: number; errors?: unknown; code?: string }, _req, reply) =>
        reply.code(err.statusCode ?? 500).send({ errors: err.errors, code: err.code }),
    );
    return app;
  };

  it('lets a verified caller through and keeps anonymous requests anonymous', async () => {
    const app = await build();
    const token = signIdentity(alice, { secret, requestId: 'req-1', clientIp: '203.0.113.9' });
    const me = await app.inject({
      url: '/me',
      headers: { [IDENTITY_HEADER]: token, 'x-request-id': 'req-1' },
    });
    expect(me.json()).toEqual(alice);
    const anon = await app.inject({ url: '/public' });
    expect(anon.json()).toEqual({ anonymous: true, ip: '127.0.0.1' });
    const viaGateway = signIdentity(null, { secret, requestId: 'req-2', clientIp: '198.51.100.7' });
    const proxied = await app.inject({
      url: '/public',
      headers: { [IDENTITY_HEADER]: viaGateway, 'x-request-id': 'req-2' },
    });
    expect(proxied.json()).toEqual({ anonymous: true, ip: '198.51.100.7' });
    const missing = await app.inject({ url: '/me' });
    expect(missing.statusCode).toBe(401);
    expect(missing.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
  });

  it('rejects a forged header with 401 before the handler runs', async () => {
    const app = await build();
    const forged = signIdentity(alice, {
      secret: 'x'.repeat(32),
      requestId: 'req-1',
      clientIp: '203.0.113.9',
    });
    const res = await app.inject({
      url: '/public',
      headers: { [IDENTITY_HEADER]: forged, 'x-request-id': 'req-1' },
    });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
  });

  it('accepts an assertion once: the same header with the request id it names is refused the second time', async () => {
    const app = await build();
    const token = signIdentity(alice, { secret, requestId: 'req-once', clientIp: '203.0.113.9' });
    const send = () =>
      app.inject({ url: '/me', headers: { [IDENTITY_HEADER]: token, 'x-request-id': 'req-once' } });
    expect((await send()).statusCode).toBe(200);
    const replay = await send();
    expect(replay.statusCode).toBe(401);
    expect(replay.json()).toEqual({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
  });

  it('remembers each assertion for one to two periods, then forgets it', () => {
    let now = 0;
    const guard = new ReplayGuard(1000, () => now);
    expect(guard.firstUse('a')).toBe(true);
    expect(guard.firstUse('a')).toBe(false);
    now = 1500; // next generation: still remembered
    expect(guard.firstUse('a')).toBe(false);
    expect(guard.firstUse('b')).toBe(true);
    now = 2600; // 'a' was two generations ago; 'b' one
    expect(guard.firstUse('a')).toBe(true);
    expect(guard.firstUse('b')).toBe(false);
    now = 10_000; // long idle: everything forgotten
    expect(guard.firstUse('b')).toBe(true);
  });
});
