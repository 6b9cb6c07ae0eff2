/**
 * The walking skeleton: a request through the gateway reaches every service, the request id follows it
 * into every log, and identity is only what the gateway asserts.
 */
import { generateKeyPairSync } from 'node:crypto';
import { IDENTITY_HEADER } from '@atoll/identity';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { gatewayHeaders, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY_KEYS, redisOf, startTestStack } from './helpers.ts';

describe('walking skeleton: gateway → auth, content, notifier', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let sessionRedis: RoleCheckedRedis;
  let store: SessionStore;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('skeleton'));
    sessionRedis = await redisOf(stack, 'session');
    store = new SessionStore(sessionRedis, createKeys(stack.envOf('gateway').REDIS_KEY_PREFIX));
  }, 90_000);
  afterAll(async () => {
    await closeRedis(sessionRedis);
    await dispose();
  });

  it('reaches every service and returns its health; one request id in every log', async () => {
    const res = await fetch(`${stack.gatewayUrl}/health/services`, {
      headers: { 'x-request-id': 'chosen-by-client' },
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { services: Record<string, { status: string; checks: object }> };
    expect(body.services.auth).toEqual({
      status: 'ready',
      checks: { 'redis-session': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
    expect(body.services.content).toEqual({
      status: 'ready',
      checks: { 'redis-cache': 'up', 'redis-queue': 'up', postgres: 'up' },
    });
    expect(body.services.notifier).toEqual({
      status: 'ready',
      checks: { 'redis-queue': 'up', 'redis-session': 'up', postgres: 'up' },
    });

    // The gateway assigns the id (a client cannot choose it) and every service logs under it.
    const requestId = res.headers.get('x-request-id') ?? '';
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    for (const name of ['gateway', 'auth', 'content', 'notifier'] as const) {
      const line = await stack.services[name].waitForLog(
        // The gateway writes one access line per request when it answers; services log on arrival too.
        (l) =>
          l.reqId === requestId && l.msg === (name === 'gateway' ? 'request completed' : 'incoming request'),
      );
      expect(line.service).toBe(name);
    }
  });

  it('resolves a session token from the Authorization header or the cookie; the service sees the user', async () => {
    const { token, session } = await store.create({ userId: 'u-1', username: 'alice', roles: ['user'] });
    const viaHeader = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(viaHeader.status).toBe(200);
    expect(await viaHeader.json()).toEqual({
      session: { id: session.id, userId: 'u-1', username: 'alice', roles: ['user'] },
    });
    const viaCookie = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { cookie: `theme=dark; atoll_session=${token}` },
    });
    expect(viaCookie.status).toBe(200);
    await store.destroy(token);
    const afterLogout = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(afterLogout.status).toBe(401);
    expect(await afterLogout.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
  });

  const alice = { userId: 'u-1', username: 'alice', sessionId: 'x', roles: ['user'] };
  const mallory = { userId: 'u-evil', username: 'mallory', sessionId: 'x', roles: ['admin'] };

  it('rejects an identity header forged with a key of its own, sent straight to a service', async () => {
    const forger = { privateKey: generateKeyPairSync('ed25519').privateKey };
    const res = await fetch(`${stack.services.auth.url}/api/auth/session`, {
      headers: gatewayHeaders(forger, 'auth', { url: '/api/auth/session', identity: mallory }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
  });

  it('rejects a genuine assertion replayed on another request', async () => {
    const genuine = gatewayHeaders(IDENTITY_KEYS, 'auth', {
      url: '/api/auth/session',
      identity: alice,
      requestId: 'the-original-request',
    });
    const res = await fetch(`${stack.services.auth.url}/api/auth/session`, {
      headers: { [IDENTITY_HEADER]: genuine[IDENTITY_HEADER] ?? '', 'x-request-id': 'another-request' },
    });
    expect(res.status).toBe(401);
  });

  it('accepts a genuine assertion once: replayed with the request id it names, it is refused', async () => {
    const genuine = gatewayHeaders(IDENTITY_KEYS, 'auth', {
      url: '/api/auth/session',
      identity: alice,
      requestId: 'captured-request',
    });
    const send = () => fetch(`${stack.services.auth.url}/api/auth/session`, { headers: genuine });
    expect((await send()).status).toBe(200);
    const replay = await send();
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
  });

  it('strips a forged identity header at the gateway: the caller stays anonymous', async () => {
    const forged = gatewayHeaders(IDENTITY_KEYS, 'auth', {
      url: '/api/auth/session',
      identity: mallory,
      requestId: 'guess',
    });
    const res = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { [IDENTITY_HEADER]: forged[IDENTITY_HEADER] ?? '', 'x-atoll-session-unavailable': '1' },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
  });

  it('answers unknown routes with 404 in the RealWorld shape at the gateway and the services', async () => {
    const atGateway = await fetch(`${stack.gatewayUrl}/nope`);
    expect(atGateway.status).toBe(404);
    expect(await atGateway.json()).toEqual({ errors: { route: ['not found'] }, code: 'NOT_FOUND' });
    const proxied = await fetch(`${stack.gatewayUrl}/api/articles/some-slug/not/a/route`);
    expect(proxied.status).toBe(404);
    expect(((await proxied.json()) as { errors: object }).errors).toEqual({ route: ['not found'] });
  });
});
