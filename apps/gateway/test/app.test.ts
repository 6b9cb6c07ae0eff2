import { IDENTITY_HEADER, IdentityVerifier } from '@atoll/identity';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { identityKeyPair, RedisServer } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';

const silent = { info() {}, warn() {}, error() {} };
const keys = identityKeyPair();
const verifierOf = (audience: string) => new IdentityVerifier({ audience, publicKeys: [keys.publicKey] });

describe('gateway buildApp on a real redis-session, with a real upstream', () => {
  let redis: RedisServer;
  let client: RoleCheckedRedis;
  let upstream: FastifyInstance;
  let app: FastifyInstance;
  let unavailableHits = 0;
  const received: Array<{ url: string; headers: Record<string, unknown>; body: unknown }> = [];

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    client = await connectRedis({ url: redis.url, role: 'session', use: 'producer', name: 't', log: silent });
    upstream = Fastify();
    upstream.removeAllContentTypeParsers();
    upstream.addContentTypeParser('*', { parseAs: 'string' }, (_r, body, done) => done(null, body));
    upstream.get('/api/leaderboard', async (_request, reply) => {
      unavailableHits += 1;
      return reply.code(503).send({ errors: { service: ['busy'] } });
    });
    upstream.all('/*', async (request) => {
      received.push({ url: request.url, headers: request.headers, body: request.body });
      return { upstream: true };
    });
    const upstreamUrl = await upstream.listen({ host: '127.0.0.1', port: 0 });
    app = await buildApp(
      loadConfig({
        LOG_LEVEL: 'silent',
        IDENTITY_PRIVATE_KEY: keys.privateKeyText,
        REDIS_SESSION_URL: redis.url,
        REDIS_KEY_PREFIX: 'gw',
        AUTH_URL: upstreamUrl,
        CONTENT_URL: upstreamUrl,
        NOTIFIER_URL: upstreamUrl,
      }),
    );
  });
  afterAll(async () => {
    await app.close();
    await upstream.close();
    await closeRedis(client);
    await redis.dispose();
  });

  it('forwards a signed identity for a live session and an anonymous one for an unknown token', async () => {
    const { token, session } = await new SessionStore(client, createKeys('gw')).create({
      userId: 'u7',
      username: 'grace',
      roles: ['user'],
    });
    received.length = 0;
    const res = await app.inject({
      url: '/api/articles/feed?limit=2',
      headers: { authorization: `Token ${token}` },
    });
    expect(res.statusCode).toBe(200);
    const forwarded = received[0];
    expect(forwarded?.url).toBe('/api/articles/feed?limit=2');
    const requestId = String(forwarded?.headers['x-request-id']);
    expect(res.headers['x-request-id']).toBe(requestId);
    const assertion = String(forwarded?.headers[IDENTITY_HEADER]);
    const verified = verifierOf('content').verify(assertion, {
      method: 'GET',
      url: '/api/articles/feed?limit=2',
      requestId,
    });
    expect(verified).toMatchObject({
      ok: true,
      identity: { userId: 'u7', username: 'grace', sessionId: session.id, roles: ['user'] },
      clientIp: '127.0.0.1',
      sessionUnavailable: false,
    });
    // Made for content, that method, that URL and that request only.
    expect(
      verifierOf('auth').verify(assertion, { method: 'GET', url: '/api/articles/feed?limit=2', requestId }),
    ).toEqual({ ok: false, reason: 'wrong-audience' });
    // Content never sees the token itself; only auth gets credentials.
    expect(forwarded?.headers.authorization).toBeUndefined();

    received.length = 0;
    await app.inject({ url: '/api/user', headers: { authorization: `Token ${'x'.repeat(43)}` } });
    const anonymous = verifierOf('auth').verify(String(received[0]?.headers[IDENTITY_HEADER]), {
      method: 'GET',
      url: '/api/user',
      requestId: String(received[0]?.headers['x-request-id']),
    });
    expect(anonymous).toMatchObject({ ok: true, identity: null });
    expect(received[0]?.headers.authorization).toBe(`Token ${'x'.repeat(43)}`);
  });

  it('binds the assertion to the URL the service receives, as the proxy encodes it (a quote in the query)', async () => {
    received.length = 0;
    const res = await app.inject({ url: "/api/articles?tag=it's&author=%C3%A9" });
    expect(res.statusCode).toBe(200);
    const forwarded = received[0];
    expect(forwarded?.url).toBe('/api/articles?tag=it%27s&author=%C3%A9');
    expect(
      verifierOf('content').verify(String(forwarded?.headers[IDENTITY_HEADER]), {
        method: 'GET',
        url: String(forwarded?.url),
        requestId: String(forwarded?.headers['x-request-id']),
      }),
    ).toMatchObject({ ok: true, identity: null });
  });

  it('forwards JSON bodies byte for byte; other bodies only where the route table allows them (415)', async () => {
    received.length = 0;
    const body = '{"article":{"title":"Ünïcode","body":"  spaced  "}}';
    const res = await app.inject({
      method: 'POST',
      url: '/api/articles',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: body,
    });
    expect(res.statusCode).toBe(200);
    expect(received[0]?.body).toBe(body);
    expect(received[0]?.headers['content-type']).toBe('application/json; charset=utf-8');

    const form = '--xyz\r\ncontent-disposition: form-data; name="a"\r\n\r\n1\r\n--xyz--\r\n';
    const refused = await app.inject({
      method: 'PUT',
      url: '/api/user',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      payload: form,
    });
    expect(refused.statusCode).toBe(415);
    expect(refused.json()).toEqual({
      errors: { body: ['must be application/json'] },
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
    expect(received).toHaveLength(1);
    // The queue dashboard takes its own forms, forwarded as they are.
    await app.inject({
      method: 'POST',
      url: '/api/admin/queues/api/jobs',
      headers: { 'content-type': 'multipart/form-data; boundary=xyz' },
      payload: form,
    });
    expect(received[1]?.body).toBe(form);
    expect(received[1]?.headers['content-type']).toBe('multipart/form-data; boundary=xyz');
    // A body-less write (favorite) needs no content type.
    expect((await app.inject({ method: 'POST', url: '/api/articles/a/favorite' })).statusCode).toBe(200);
  });

  it("passes an upstream's 503 through at once, without retrying it", async () => {
    const res = await app.inject({ url: '/api/leaderboard' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ errors: { service: ['busy'] } });
    expect(unavailableHits).toBe(1);
  });

  it('routes each prefix of the table to its service and nothing else', async () => {
    expect((await app.inject({ url: '/api/tags' })).statusCode).toBe(200);
    expect((await app.inject({ url: '/api/notifications' })).statusCode).toBe(200);
    const unknown = await app.inject({ url: '/api/unknown' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ errors: { route: ['not found'] }, code: 'NOT_FOUND' });
  });
});
