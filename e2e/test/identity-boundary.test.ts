/**
 * Behind the gateway, nothing trusts the network: a process on this machine that calls a service on its
 * real port is refused on every route but health and metrics, whether it sends no assertion, one the
 * gateway made for another service or route, one signed with a key of its own, or an internal header
 * such as `x-atoll-session-unavailable`. Auth's one internal route answers content's internal token only.
 * And a service left to its defaults listens on loopback only.
 * (docs/security.md, "Trust behind the gateway: identity".)
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { IDENTITY_HEADER, type Identity, IdentitySigner, parsePublicKeys } from '@atoll/identity';
import { gatewayHeaders, ServiceProcess, type Stack } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IDENTITY_KEYS, startTestStack } from './helpers.ts';

const SERVICES = ['auth', 'content', 'notifier'] as const;
type Service = (typeof SERVICES)[number];
/** A route of each service that serves the public API, and what a signed-in caller gets there. */
const ROUTE: Record<Service, { method: string; url: string }> = {
  auth: { method: 'GET', url: '/api/user' },
  content: { method: 'GET', url: '/api/articles?limit=1' },
  notifier: { method: 'GET', url: '/api/notifications' },
};
const METRICS_TOKEN = randomBytes(24).toString('hex');
const MISSING = { errors: { identity: ['is missing'] }, code: 'IDENTITY_MISSING' };
const INVALID = { errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' };

describe('services answer only the gateway', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let admin: Identity;

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('identity-boundary', { METRICS_TOKEN }));
    const res = await fetch(`${stack.gatewayUrl}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user: { username: 'alice', email: 'alice@example.com', password: 'correct horse battery' },
      }),
    });
    expect(res.status).toBe(201);
    const { user } = (await res.json()) as { user: { token: string } };
    const session = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${user.token}` },
    });
    const { session: s } = (await session.json()) as {
      session: { id: string; userId: string; username: string };
    };
    // What a captured assertion of a real user could claim, and more: an admin.
    admin = { userId: s.userId, username: s.username, sessionId: s.id, roles: ['user', 'admin'] };
  }, 90_000);
  afterAll(async () => {
    await dispose();
  });

  const direct = (service: Service, url: string, init: RequestInit = {}) =>
    fetch(`${stack.services[service].url}${url}`, init);

  it('refuses a request without an assertion on every route of every service, /internal/openapi.json too', async () => {
    for (const service of SERVICES) {
      for (const url of [ROUTE[service].url, '/internal/openapi.json', '/no/such/route']) {
        const res = await direct(service, url);
        expect(res.status, `${service} ${url}`).toBe(401);
        expect(await res.json()).toEqual(MISSING);
      }
    }
    // The notifier's dashboard and auth's account routes are refused before they are reached.
    expect((await direct('notifier', '/api/admin/queues')).status).toBe(401);
    expect((await direct('auth', '/api/admin/users')).status).toBe(401);
  });

  it('refuses a direct sign-up: it skipped every gateway limit, now it creates nothing', async () => {
    const res = await direct('auth', '/api/users', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user: { username: 'direct', email: 'direct@example.com', password: 'correct horse battery' },
      }),
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual(MISSING);
    const db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT count(*)::int AS n FROM auth.users WHERE username = 'direct'`);
      expect(rows[0].n).toBe(0);
    } finally {
      await db.end();
    }
  });

  it('ignores x-atoll-session-unavailable: it forces no 503, with or without an assertion', async () => {
    for (const service of SERVICES) {
      const { url } = ROUTE[service];
      const bare = await direct(service, url, { headers: { 'x-atoll-session-unavailable': '1' } });
      expect(bare.status, service).toBe(401);
      expect(await bare.json()).toEqual(MISSING);
    }
    // With the gateway's genuine "nobody" assertion, the header still says nothing: 401, not 503.
    const nobody = gatewayHeaders(IDENTITY_KEYS, 'auth', { url: '/api/user' });
    const res = await direct('auth', '/api/user', {
      headers: { ...nobody, 'x-atoll-session-unavailable': '1' },
    });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
    // Only the signed claim counts: the gateway's "the session store is unavailable" is a 503.
    const signed = gatewayHeaders(IDENTITY_KEYS, 'auth', { url: '/api/user', sessionUnavailable: true });
    const unavailable = await direct('auth', '/api/user', { headers: signed });
    expect(unavailable.status).toBe(503);
    expect(((await unavailable.json()) as { code: string }).code).toBe('SESSION_STORE_UNAVAILABLE');
  });

  it('refuses an assertion the gateway made for another service, route, method or request', async () => {
    for (const target of SERVICES) {
      const { method, url } = ROUTE[target];
      for (const other of SERVICES.filter((s) => s !== target)) {
        // Captured on its way to `other`, sent to `target` with the route and request id it names.
        const headers = gatewayHeaders(IDENTITY_KEYS, other, { method, url, identity: admin });
        const res = await direct(target, url, { method, headers });
        expect(res.status, `${other}'s assertion at ${target}`).toBe(401);
        expect(await res.json()).toEqual(INVALID);
      }
      const otherRoute = gatewayHeaders(IDENTITY_KEYS, target, { url: '/health/live', identity: admin });
      expect((await direct(target, url, { headers: otherRoute })).status, `${target}: route`).toBe(401);
      const otherMethod = gatewayHeaders(IDENTITY_KEYS, target, { method: 'DELETE', url, identity: admin });
      expect((await direct(target, url, { headers: otherMethod })).status, `${target}: method`).toBe(401);
      const captured = gatewayHeaders(IDENTITY_KEYS, target, { url, identity: admin });
      const otherRequest = { ...captured, 'x-request-id': 'another-request' };
      expect((await direct(target, url, { headers: otherRequest })).status, `${target}: request`).toBe(401);
      // The same assertion, re-spelled: one signature has one spelling.
      const token = captured[IDENTITY_HEADER] ?? '';
      const respelled = {
        ...captured,
        [IDENTITY_HEADER]: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`,
      };
      expect((await direct(target, url, { headers: respelled })).status, `${target}: respelled`).toBe(401);
    }
    // The openapi document, asked for one service with an assertion made for another, is refused too.
    const forContent = gatewayHeaders(IDENTITY_KEYS, 'content', { url: '/internal/openapi.json' });
    expect((await direct('auth', '/internal/openapi.json', { headers: forContent })).status).toBe(401);
    const genuine = gatewayHeaders(IDENTITY_KEYS, 'auth', { url: '/internal/openapi.json' });
    expect((await direct('auth', '/internal/openapi.json', { headers: genuine })).status).toBe(200);
  });

  it('a compromised auth, content or notifier cannot mint an identity another service accepts', async () => {
    for (const compromised of SERVICES) {
      const env = stack.envOf(compromised);
      // What it holds: the gateway's public key, and no signing key at all.
      expect(Object.keys(env).filter((k) => k.startsWith('IDENTITY_'))).toEqual(['IDENTITY_PUBLIC_KEYS']);
      const [publicKey] = parsePublicKeys(env.IDENTITY_PUBLIC_KEYS ?? '');
      expect(() => new IdentitySigner(publicKey as never)).toThrow(/Ed25519 private key/);
      // What it can make: assertions under a key of its own, which no other service accepts.
      const own = { privateKey: generateKeyPairSync('ed25519').privateKey };
      for (const victim of SERVICES.filter((s) => s !== compromised)) {
        const { method, url } = ROUTE[victim];
        const forged = gatewayHeaders(own, victim, { method, url, identity: admin });
        const res = await direct(victim, url, { method, headers: forged });
        expect(res.status, `${compromised} → ${victim}`).toBe(401);
        expect(await res.json()).toEqual(INVALID);
      }
    }
    // The notifier's admin dashboard, the prize of a forged admin, stays shut.
    const own = { privateKey: generateKeyPairSync('ed25519').privateKey };
    const forged = gatewayHeaders(own, 'notifier', { url: '/api/admin/queues', identity: admin });
    expect((await direct('notifier', '/api/admin/queues', { headers: forged })).status).toBe(401);
  });

  it("serves auth's internal profile route to content's token only, not to the gateway's assertion", async () => {
    const url = '/internal/profiles/alice';
    const REFUSED = {
      errors: { internal: ['need the internal bearer token'] },
      code: 'INTERNAL_UNAUTHORIZED',
    };
    const token = stack.envOf('content').AUTH_INTERNAL_TOKEN as string;
    expect(token.length).toBeGreaterThanOrEqual(32);
    expect(stack.envOf('auth').INTERNAL_TOKEN).toBe(token);
    // Neither the gateway nor the notifier is given it.
    expect(stack.envOf('notifier')).not.toHaveProperty('INTERNAL_TOKEN');
    expect(stack.envOf('notifier')).not.toHaveProperty('AUTH_INTERNAL_TOKEN');
    expect(stack.envOf('gateway')).not.toHaveProperty('INTERNAL_TOKEN');
    expect(stack.envOf('gateway')).not.toHaveProperty('AUTH_INTERNAL_TOKEN');
    const attempts: Record<string, Record<string, string>> = {
      'no token': {},
      'a wrong token': { authorization: `Bearer ${randomBytes(32).toString('hex')}` },
      'the token without Bearer': { authorization: token },
      'the metrics token': { authorization: `Bearer ${METRICS_TOKEN}` },
      "the gateway's assertion alone": gatewayHeaders(IDENTITY_KEYS, 'auth', { url, identity: admin }),
    };
    for (const [what, headers] of Object.entries(attempts)) {
      const res = await direct('auth', url, { headers });
      expect(res.status, what).toBe(401);
      expect(await res.json(), what).toEqual(REFUSED);
    }
    const asked = await direct('auth', url, { headers: { authorization: `Bearer ${token}` } });
    expect(asked.status).toBe(200);
    expect(((await asked.json()) as { profile: { username: string } }).profile.username).toBe('alice');
  });

  it('still serves health to anyone and metrics to its token, and everything through the gateway', async () => {
    for (const service of SERVICES) {
      expect((await direct(service, '/health/live')).status, service).toBe(200);
      expect((await direct(service, '/health/ready')).status, service).toBe(200);
      const metrics = await direct(service, '/metrics', {
        headers: { authorization: `Bearer ${METRICS_TOKEN}` },
      });
      expect(metrics.status, service).toBe(200);
      expect(await metrics.text()).toContain('http_requests_total');
      expect((await direct(service, '/metrics')).status, `${service} without the token`).toBe(401);
    }
    const services = await fetch(`${stack.gatewayUrl}/health/services`);
    expect(services.status).toBe(200);
    const reference = await fetch(`${stack.gatewayUrl}/api/openapi.json`);
    expect(reference.headers.get('x-atoll-missing')).toBeNull();
    const doc = (await reference.json()) as { paths: Record<string, unknown>; 'x-atoll-missing'?: string[] };
    expect(doc['x-atoll-missing']).toBeUndefined();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/api/users', '/api/articles', '/api/notifications']),
    );
    for (const service of SERVICES) {
      const { url } = ROUTE[service];
      expect((await fetch(`${stack.gatewayUrl}${url}`)).status, service).not.toBe(403);
    }
    expect((await fetch(`${stack.gatewayUrl}/api/articles?limit=1`)).status).toBe(200);
    // A long URL (the assertion holds it by its hash) still passes the identity check and reaches
    // content's own validation, which judges the tag.
    const long = await fetch(`${stack.gatewayUrl}/api/articles?tag=${'t'.repeat(6000)}`);
    expect(((await long.json()) as { code: string }).code).toBe('VALIDATION_FAILED');
    // HEAD is forwarded as HEAD, and the assertion names it so.
    expect((await fetch(`${stack.gatewayUrl}/api/articles?limit=1`, { method: 'HEAD' })).status).toBe(200);
  });

  it('listens on loopback only unless HOST says otherwise', async () => {
    const { HOST: _host, ...env } = stack.envOf('content');
    const proc = await ServiceProcess.start('content', { ...env, PORT: '0' });
    try {
      const line = await proc.waitForLog((l) => typeof l.msg === 'string' && l.msg.includes('listening'));
      expect(String(line.msg)).toContain('http://127.0.0.1:');
      const port = Number(new URL(proc.url).port);
      const external = Object.values(networkInterfaces())
        .flat()
        .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
      if (external) {
        const reached = await new Promise<boolean>((resolve) => {
          const socket = connect({ host: external, port }, () => {
            socket.destroy();
            resolve(true);
          });
          socket.on('error', () => resolve(false));
        });
        expect(reached, `content reachable on ${external}:${port}`).toBe(false);
      }
    } finally {
      await proc.stop();
    }
  });
});
