import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  type AssertionRequest,
  IDENTITY_HEADER,
  IdentitySigner,
  IdentityVerifier,
  identityPlugin,
  keyIdOf,
  parsePrivateKey,
  parsePublicKeys,
  ReplayGuard,
  requireIdentity,
} from '../src/index.ts';

const pair = () => generateKeyPairSync('ed25519');
const gateway = pair();
const signer = new IdentitySigner(gateway.privateKey);
const verifierFor = (audience: string, keys: KeyObject[] = [gateway.publicKey]) =>
  new IdentityVerifier({ audience, publicKeys: keys });
const alice = { userId: 'u1', username: 'alice', sessionId: 'abc', roles: ['user'] };
const forContent = (over: Partial<AssertionRequest> = {}): AssertionRequest => ({
  audience: 'content',
  method: 'GET',
  url: '/api/articles?limit=5',
  requestId: 'r1',
  clientIp: '203.0.113.9',
  identity: alice,
  ...over,
});
const asSeen = { method: 'GET', url: '/api/articles?limit=5', requestId: 'r1' };

describe('identity assertion', () => {
  it('round-trips for the service, method, URL and request it was made for', () => {
    const result = verifierFor('content').verify(signer.sign(forContent()), asSeen);
    expect(result).toMatchObject({
      ok: true,
      identity: alice,
      clientIp: '203.0.113.9',
      sessionUnavailable: false,
    });
    const nobody = signer.sign(forContent({ identity: null, clientIp: '2001:db8::1' }));
    expect(verifierFor('content').verify(nobody, asSeen)).toMatchObject({
      ok: true,
      identity: null,
      clientIp: '2001:db8::1',
    });
    const unknown = signer.sign(forContent({ identity: null, sessionUnavailable: true }));
    expect(verifierFor('content').verify(unknown, asSeen)).toMatchObject({
      ok: true,
      identity: null,
      sessionUnavailable: true,
    });
  });

  it('refuses an assertion re-aimed at another audience, method, URL or request', () => {
    const token = signer.sign(forContent());
    expect(verifierFor('auth').verify(token, asSeen)).toEqual({ ok: false, reason: 'wrong-audience' });
    expect(verifierFor('notifier').verify(token, asSeen)).toEqual({ ok: false, reason: 'wrong-audience' });
    const content = verifierFor('content');
    expect(content.verify(token, { ...asSeen, method: 'DELETE' })).toEqual({
      ok: false,
      reason: 'wrong-method',
    });
    expect(content.verify(token, { ...asSeen, url: '/api/articles' })).toEqual({
      ok: false,
      reason: 'wrong-url',
    });
    expect(content.verify(token, { ...asSeen, url: '/api/articles?limit=50' })).toEqual({
      ok: false,
      reason: 'wrong-url',
    });
    expect(content.verify(token, { ...asSeen, requestId: 'r2' })).toEqual({
      ok: false,
      reason: 'wrong-request',
    });
  });

  it('stays small for a URL of 8 KB (it holds the URL by its hash), and still binds every byte of it', () => {
    const url = `/api/articles?tag=${'t'.repeat(8 * 1024)}`;
    const token = signer.sign(forContent({ url }));
    expect(token.length).toBeLessThan(600);
    const content = verifierFor('content');
    expect(content.verify(token, { ...asSeen, url }).ok).toBe(true);
    expect(content.verify(token, { ...asSeen, url: `${url.slice(0, -1)}u` })).toEqual({
      ok: false,
      reason: 'wrong-url',
    });
  });

  it('refuses an expired assertion, one from the future, and one that claims a long life', () => {
    const now = 1_000_000_000;
    const content = verifierFor('content');
    const token = signer.sign(forContent({ now }));
    expect(content.verify(token, { ...asSeen, now: now + 4_000 }).ok).toBe(true);
    expect(content.verify(token, { ...asSeen, now: now + 11_000 })).toEqual({ ok: false, reason: 'expired' });
    expect(content.verify(token, { ...asSeen, now: now - 6_000 })).toEqual({ ok: false, reason: 'expired' });
    const long = signer.sign(forContent({ now, ttlSeconds: 60 }));
    expect(content.verify(long, { ...asSeen, now })).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses every other spelling of the same signature, payload and key id', () => {
    const token = signer.sign(forContent());
    const [v, kid, payload, sig] = token.split('.') as [string, string, string, string];
    const content = verifierFor('content');
    expect(content.verify(token, asSeen).ok).toBe(true);
    // The last of 86 characters carries 2 bits of the signature and 4 unused bits: Node decodes all 16
    // letters that share those 2 bits to the same bytes.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(sig.slice(-1));
    const sameBytes = [...alphabet].filter((c, i) => c !== sig.slice(-1) && i >> 4 === last >> 4);
    expect(sameBytes).toHaveLength(15);
    for (const c of sameBytes) {
      const spelling = `${v}.${kid}.${payload}.${sig.slice(0, -1)}${c}`;
      expect(Buffer.from(spelling.split('.')[3] ?? '', 'base64url')).toEqual(Buffer.from(sig, 'base64url'));
      expect(content.verify(spelling, asSeen)).toEqual({ ok: false, reason: 'malformed' });
    }
    for (const spelling of [
      `${v}.${kid}.${payload}.${sig}==`,
      `${v}.${kid}.${payload}.${Buffer.from(sig, 'base64url').toString('base64')}`,
      `${v}.${kid}.${payload}=.${sig}`,
      `${v}.${kid}.${payload}.${sig.slice(0, 40)}\n${sig.slice(40)}`,
      `${v}.${kid}.${payload} .${sig}`,
      `${v}.${kid}.${payload}.${sig}.`,
    ]) {
      expect(content.verify(spelling, asSeen).ok).toBe(false);
    }
  });

  it('refuses a signature made malleable (S + L): only the one canonical signature verifies', () => {
    const token = signer.sign(forContent());
    const parts = token.split('.');
    const sig = Buffer.from(parts[3] ?? '', 'base64url');
    // S is the little-endian upper half; L is the order of the Ed25519 group.
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString('hex')}`) + L;
    const sPlusL = Buffer.from(s.toString(16).padStart(64, '0'), 'hex').reverse();
    const malleated = Buffer.concat([sig.subarray(0, 32), sPlusL]);
    parts[3] = malleated.toString('base64url');
    expect(verifierFor('content').verify(parts.join('.'), asSeen)).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('refuses an assertion signed by an unknown key, or by any key but the gateway’s', () => {
    const intruder = new IdentitySigner(pair().privateKey);
    expect(verifierFor('content').verify(intruder.sign(forContent()), asSeen)).toEqual({
      ok: false,
      reason: 'unknown-key',
    });
    // The intruder's signature under the gateway's key id.
    const [v, , payload] = intruder.sign(forContent()).split('.');
    const body = `${v}.${signer.keyId}.${payload}`;
    const relabelled = `${body}.${sign(null, Buffer.from(body), pair().privateKey).toString('base64url')}`;
    expect(verifierFor('content').verify(relabelled, asSeen)).toEqual({ ok: false, reason: 'bad-signature' });
    // A tampered payload.
    const [, , good, sig] = signer.sign(forContent()).split('.');
    const admin = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(good ?? '', 'base64url').toString()), roles: ['admin'] }),
    ).toString('base64url');
    expect(verifierFor('content').verify(`v2.${signer.keyId}.${admin}.${sig}`, asSeen)).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    expect(verifierFor('content').verify('not-a-token', asSeen)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('accepts both keys during a rotation, and the old one no more once it is removed', () => {
    const next = pair();
    const nextSigner = new IdentitySigner(next.privateKey);
    const both = verifierFor('content', [gateway.publicKey, next.publicKey]);
    expect(both.verify(signer.sign(forContent()), asSeen).ok).toBe(true);
    expect(both.verify(nextSigner.sign(forContent()), asSeen).ok).toBe(true);
    expect(nextSigner.keyId).not.toBe(signer.keyId);
    const rotated = verifierFor('content', [next.publicKey]);
    expect(rotated.verify(signer.sign(forContent()), asSeen)).toEqual({ ok: false, reason: 'unknown-key' });
  });

  it('a service key cannot sign: services get public keys, and a public key is no signer', () => {
    expect(() => new IdentitySigner(gateway.publicKey)).toThrow(/Ed25519 private key/);
    const pem = gateway.publicKey.export({ format: 'pem', type: 'spki' }).toString();
    const [parsed] = parsePublicKeys(pem);
    expect(parsed?.type).toBe('public');
    expect(() => new IdentitySigner(parsed as KeyObject)).toThrow(/Ed25519 private key/);
    expect(() => parsePrivateKey(pem)).toThrow();
    // Nor can a verifier be given the private key by mistake.
    expect(() => verifierFor('content', [gateway.privateKey])).toThrow(/Ed25519 public key/);
  });

  it('reads keys as PEM or as one-line base64 DER, one or two public keys', () => {
    const next = pair();
    const pem = (k: KeyObject) => k.export({ format: 'pem', type: 'spki' }).toString();
    const der = (k: KeyObject) => k.export({ format: 'der', type: 'spki' }).toString('base64');
    const ids = (keys: KeyObject[]) => keys.map(keyIdOf);
    const expected = [keyIdOf(gateway.publicKey), keyIdOf(next.publicKey)];
    expect(ids(parsePublicKeys(`${pem(gateway.publicKey)}\n${pem(next.publicKey)}`))).toEqual(expected);
    expect(ids(parsePublicKeys(`${der(gateway.publicKey)},${der(next.publicKey)}`))).toEqual(expected);
    const privateDer = gateway.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
    expect(new IdentitySigner(parsePrivateKey(privateDer)).keyId).toBe(signer.keyId);
    const privatePem = gateway.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    expect(new IdentitySigner(parsePrivateKey(privatePem)).keyId).toBe(signer.keyId);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    expect(() => parsePublicKeys(pem(rsa.publicKey))).toThrow(/Ed25519/);
    expect(() => parsePublicKeys('')).toThrow();
  });

  it('an HMAC over the same bytes is no assertion (the old shared-secret format is gone)', () => {
    const [v, kid, payload] = signer.sign(forContent()).split('.');
    const body = `${v}.${kid}.${payload}`;
    const mac = createHmac('sha256', 'x'.repeat(32)).update(body).digest('base64url');
    expect(verifierFor('content').verify(`${body}.${mac}`, asSeen)).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });
});

describe('identity plugin', () => {
  const build = async () => {
    const app = Fastify({ requestIdHeader: 'x-request-id' });
    await app.register(identityPlugin, { audience: 'content', publicKeys: [gateway.publicKey] });
    app.get('/me', async (request) => requireIdentity(request));
    app.get('/public', async (request) => ({ anonymous: request.identity === null, ip: request.clientIp }));
    app.get('/health/live', async () => ({ status: 'ok' }));
    app.get('/metrics', async () => 'metrics');
    app.get('/shared', { config: { identity: false } }, async () => ({ shared: true }));
    app.setErrorHandler(
      (err: Error & { statusCode?: number; errors?: unknown; code?: string }, _req, reply) =>
        reply.code(err.statusCode ?? 500).send({ errors: err.errors, code: err.code }),
    );
    return app;
  };
  const assert = (url: string, requestId: string, over: Partial<AssertionRequest> = {}) =>
    signer.sign(forContent({ url, requestId, ...over }));

  it('lets a verified caller through, and "nobody" through as anonymous', async () => {
    const app = await build();
    const me = await app.inject({
      url: '/me',
      headers: { [IDENTITY_HEADER]: assert('/me', 'req-1'), 'x-request-id': 'req-1' },
    });
    expect(me.json()).toEqual(alice);
    const nobody = await app.inject({
      url: '/public',
      headers: {
        [IDENTITY_HEADER]: assert('/public', 'req-2', { identity: null, clientIp: '198.51.100.7' }),
        'x-request-id': 'req-2',
      },
    });
    expect(nobody.json()).toEqual({ anonymous: true, ip: '198.51.100.7' });
    const nobodyMe = await app.inject({
      url: '/me',
      headers: { [IDENTITY_HEADER]: assert('/me', 'req-3', { identity: null }), 'x-request-id': 'req-3' },
    });
    expect(nobodyMe.statusCode).toBe(401);
    expect(nobodyMe.json()).toEqual({ errors: { token: ['is missing'] }, code: 'TOKEN_MISSING' });
  });

  it('refuses a request without an assertion, on every route but health, metrics and one marked open', async () => {
    const app = await build();
    for (const url of ['/me', '/public', '/nowhere', '/health/../me']) {
      const res = await app.inject({ url });
      expect(res.statusCode, url).toBe(401);
      expect(res.json()).toEqual({ errors: { identity: ['is missing'] }, code: 'IDENTITY_MISSING' });
    }
    for (const url of ['/health/live', '/metrics', '/shared'])
      expect((await app.inject({ url })).statusCode, url).toBe(200);
  });

  it('takes "the session store is unavailable" from the assertion only, never from a header', async () => {
    const app = await build();
    const header = await app.inject({
      url: '/me',
      headers: {
        [IDENTITY_HEADER]: assert('/me', 'req-h', { identity: null }),
        'x-request-id': 'req-h',
        'x-atoll-session-unavailable': '1',
      },
    });
    expect(header.statusCode).toBe(401);
    const signed = await app.inject({
      url: '/me',
      headers: {
        [IDENTITY_HEADER]: assert('/me', 'req-s', { identity: null, sessionUnavailable: true }),
        'x-request-id': 'req-s',
      },
    });
    expect(signed.statusCode).toBe(503);
    expect(signed.json().code).toBe('SESSION_STORE_UNAVAILABLE');
  });

  it('refuses a forged, re-aimed or foreign-key assertion with 401 before the handler runs', async () => {
    const app = await build();
    const intruder = new IdentitySigner(pair().privateKey);
    for (const [token, url, method] of [
      [intruder.sign(forContent({ url: '/public', requestId: 'req-1' })), '/public', 'GET'],
      [assert('/public', 'req-1', { audience: 'auth' }), '/public', 'GET'],
      [assert('/me', 'req-1'), '/public', 'GET'],
      [assert('/public', 'req-1'), '/public', 'DELETE'],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        headers: { [IDENTITY_HEADER]: token, 'x-request-id': 'req-1' },
      });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ errors: { identity: ['is invalid'] }, code: 'IDENTITY_INVALID' });
    }
  });

  it('accepts an assertion once: the same header with the request id it names is refused the second time', async () => {
    const app = await build();
    const token = assert('/me', 'req-once');
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
