/**
 * v3 assertions: one Ed25519 signature over the Merkle root of a batch, a proof per assertion. Each
 * assertion must verify for its own request and nothing else, whatever is changed in it, and whatever a
 * verifier has already seen of its batch.
 */
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import fc from 'fast-check';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  type AssertionRequest,
  BatchingSigner,
  IDENTITY_HEADER,
  IdentitySigner,
  IdentityVerifier,
  identityPlugin,
  MAX_ASSERTION_LIFE_SECONDS,
  MAX_BATCH,
  REPLAY_MEMORY_MS,
  VERIFIED_ROOTS,
} from '../src/index.ts';

const gateway = generateKeyPairSync('ed25519');
const signer = new IdentitySigner(gateway.privateKey);
const verifier = () => new IdentityVerifier({ audience: 'content', publicKeys: [gateway.publicKey] });
const alice = { userId: 'u1', username: 'alice', sessionId: 'abc', roles: ['user'] };
const NOW = Date.now();
const request = (i: number, over: Partial<AssertionRequest> = {}): AssertionRequest => ({
  audience: 'content',
  method: i % 3 === 0 ? 'POST' : 'GET',
  url: `/api/articles/a-${i}`,
  requestId: `req-${i}`,
  clientIp: '203.0.113.9',
  identity: i % 2 === 0 ? alice : null,
  now: NOW,
  ...over,
});
const asSeen = (r: AssertionRequest) => ({ method: r.method, url: r.url, requestId: r.requestId, now: NOW });
const batchOf = (size: number, from = 0) => Array.from({ length: size }, (_, i) => request(from + i));

describe('batched assertions (v3)', () => {
  it('every assertion of a batch of any size verifies for its own request, one signature check per batch', () => {
    const v = verifier();
    let from = 0;
    for (let size = 1; size <= MAX_BATCH; size++) {
      const reqs = batchOf(size, from);
      from += size;
      const tokens = signer.signBatch(reqs);
      expect(tokens).toHaveLength(size);
      const before = v.signatureChecks;
      tokens.forEach((token, i) => {
        const req = reqs[i] as AssertionRequest;
        expect(v.verify(token, asSeen(req))).toMatchObject({
          ok: true,
          identity: req.identity,
          clientIp: '203.0.113.9',
        });
      });
      expect(v.signatureChecks - before, `batch of ${size}`).toBe(1);
    }
    expect(() => signer.signBatch([])).toThrow(RangeError);
    expect(() => signer.signBatch(batchOf(MAX_BATCH + 1))).toThrow(RangeError);
  });

  it('an assertion verifies for no other request of its batch, and no proof serves another leaf', () => {
    const reqs = batchOf(7);
    const tokens = signer.signBatch(reqs);
    const v = verifier();
    for (const [i, token] of tokens.entries()) {
      for (const [j, other] of reqs.entries()) {
        if (i !== j) expect(v.verify(token, asSeen(other)).ok, `${i} as ${j}`).toBe(false);
      }
      const [version, kid, payload, , sig] = token.split('.');
      for (const [j, donor] of tokens.entries()) {
        if (i === j) continue;
        const proof = donor.split('.')[3];
        const swapped = `${version}.${kid}.${payload}.${proof}.${sig}`;
        expect(v.verify(swapped, asSeen(reqs[i] as AssertionRequest))).toEqual({
          ok: false,
          reason: 'bad-signature',
        });
      }
    }
  });

  it('refuses any change to any part of an assertion, whether or not its batch was verified before', () => {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ';
    const batches = [1, 2, 3, 5, 16, MAX_BATCH].map((size, b) => {
      const reqs = batchOf(size, b * 100);
      return { reqs, tokens: signer.signBatch(reqs) };
    });
    fc.assert(
      fc.property(
        fc.nat(batches.length - 1),
        fc.nat(MAX_BATCH - 1),
        fc.nat(),
        fc.constantFrom('replace', 'delete', 'insert'),
        fc.nat(alphabet.length - 1),
        fc.boolean(),
        (b, which, at, edit, letter, warm) => {
          const { reqs, tokens } = batches[b] as (typeof batches)[number];
          const i = which % tokens.length;
          const token = tokens[i] as string;
          const pos = at % token.length;
          const c = alphabet[letter] as string;
          const changed =
            edit === 'delete'
              ? token.slice(0, pos) + token.slice(pos + 1)
              : edit === 'insert'
                ? token.slice(0, pos) + c + token.slice(pos)
                : token.slice(0, pos) + c + token.slice(pos + 1);
          if (changed === token) return;
          const v = verifier();
          // Warm: the verifier has just accepted another assertion of the same batch (or this one).
          if (warm) expect(v.verify(tokens[0] as string, asSeen(reqs[0] as AssertionRequest)).ok).toBe(true);
          expect(v.verify(changed, asSeen(reqs[i] as AssertionRequest)).ok).toBe(false);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('builds the tree the module comment describes, byte for byte (gateways and services of other versions agree)', () => {
    // The tree and the signed message recomputed here from the written scheme with Hash objects, so a
    // change in how the module hashes that changes a byte fails here, not between two versions.
    const h = (...parts: Array<Buffer | string>) => {
      const hash = createHash('sha256');
      for (const part of parts) hash.update(part);
      return hash.digest();
    };
    const tokens = signer.signBatch(batchOf(3));
    const parts = tokens.map((t) => t.split('.'));
    const [version, kid] = parts[0] as string[];
    const leaves = parts.map(([v, k, payload]) => h(Buffer.of(0), `${v}.${k}.${payload}`));
    leaves.push(h(Buffer.of(2)));
    const pairs = [
      h(Buffer.of(1), leaves[0] as Buffer, leaves[1] as Buffer),
      h(Buffer.of(1), leaves[2] as Buffer, leaves[3] as Buffer),
    ];
    const root = h(Buffer.of(1), pairs[0] as Buffer, pairs[1] as Buffer);
    const sibling = [leaves[1], leaves[0], leaves[3], leaves[2]] as Buffer[];
    parts.forEach(([, , , proof, sig], i) => {
      expect(Buffer.from(proof as string, 'base64url')).toEqual(
        Buffer.concat([Buffer.of(i), sibling[i] as Buffer, pairs[1 - (i >> 1)] as Buffer]),
      );
      expect(sig).toBe(
        sign(
          null,
          Buffer.from(`${version}-root.${kid}.${root.toString('base64url')}`),
          gateway.privateKey,
        ).toString('base64url'),
      );
    });
    // The key id: the first 8 bytes of SHA-256 of the raw public key.
    const raw = gateway.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    expect(kid).toBe(h(raw).subarray(0, 8).toString('base64url'));
    // And the request target travels as its SHA-256.
    const payload = JSON.parse(Buffer.from(parts[0]?.[2] as string, 'base64url').toString());
    expect(payload.uh).toBe(h(request(0).url).toString('base64url'));
  });

  it('refuses a leaf the gateway never signed at a padded position of a signed tree', () => {
    // A batch of 3 is padded to 4: the fourth leaf is the fixed empty leaf. Its proof is known to
    // whoever sees the third assertion (the empty leaf, then the first pair's node).
    const reqs = batchOf(3);
    const tokens = signer.signBatch(reqs);
    const [version, kid, , proof3, sig] = (tokens[2] as string).split('.') as string[];
    const siblings = Buffer.from(proof3 as string, 'base64url').subarray(1);
    const third = createHash('sha256')
      .update(Buffer.of(0))
      .update(`${version}.${kid}.${(tokens[2] as string).split('.')[2]}`)
      .digest();
    const forged = { ...request(3), identity: { ...alice, roles: ['admin'] } };
    const payload = (signer.signBatch([forged])[0] as string).split('.')[2];
    const proof = Buffer.concat([Buffer.of(3), third, siblings.subarray(32)]).toString('base64url');
    expect(verifier().verify(`${version}.${kid}.${payload}.${proof}.${sig}`, asSeen(forged))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('refuses a proof deeper than a batch can be, or an index outside its tree', () => {
    const [token] = signer.signBatch([request(0)]);
    const [version, kid, payload, , sig] = (token as string).split('.');
    const v = verifier();
    const withProof = (bytes: Buffer) => `${version}.${kid}.${payload}.${bytes.toString('base64url')}.${sig}`;
    const hash = Buffer.alloc(32, 7);
    expect(v.verify(withProof(Buffer.of(1)), asSeen(request(0)))).toEqual({ ok: false, reason: 'malformed' });
    expect(v.verify(withProof(Buffer.concat([Buffer.of(2), hash])), asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'malformed',
    });
    expect(
      v.verify(withProof(Buffer.concat([Buffer.of(0), ...Array(7).fill(hash)])), asSeen(request(0))),
    ).toEqual({ ok: false, reason: 'malformed' });
    expect(v.verify(withProof(Buffer.of(0, 1)), asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'malformed',
    });
    expect(v.verify(withProof(Buffer.alloc(0)), asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'malformed',
    });
  });

  it('a signature over one form is no signature over the other (v2 and v3 sign different messages)', () => {
    const v = verifier();
    const [batched] = signer.signBatch([request(0)]);
    const [, kid, payload, , rootSig] = (batched as string).split('.');
    expect(v.verify(`v2.${kid}.${payload}.${rootSig}`, asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    const single = signer.sign(request(0)).split('.');
    expect(v.verify(`v3.${kid}.${single[2]}.AA.${single[3]}`, asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    // A key that is not the gateway's signing the same root.
    const root = createHash('sha256').update(Buffer.of(0)).update(`v3.${kid}.${payload}`).digest();
    const intruder = sign(
      null,
      Buffer.from(`v3-root.${kid}.${root.toString('base64url')}`),
      generateKeyPairSync('ed25519').privateKey,
    ).toString('base64url');
    expect(v.verify(`v3.${kid}.${payload}.AA.${intruder}`, asSeen(request(0)))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
  });

  it('gives a neighbour in the batch nothing to check a guess against, even for the same request', () => {
    // As the API reference asks the three services in one turn: one request id, one caller, one target.
    const same = { ...request(0), method: 'GET', url: '/internal/openapi.json', requestId: 'req-docs' };
    const reqs = ['auth', 'content', 'notifier'].map((audience) => ({ ...same, audience }));
    const tokens = signer.signBatch(reqs);
    const payloads = tokens.map((t) =>
      JSON.parse(Buffer.from(t.split('.')[2] as string, 'base64url').toString()),
    );
    expect(new Set(payloads.map((p) => p.n)).size).toBe(3);
    // The notifier (leaf 2) rebuilds its neighbours' leaves from its own payload, the audience changed,
    // and checks them against the node its proof gives it: H(0x01, leaf 0, leaf 1).
    const [, kid, , proof] = (tokens[2] as string).split('.') as string[];
    const pairNode = Buffer.from(proof as string, 'base64url').subarray(1 + 32, 1 + 64);
    const leaf = (payload: object) =>
      createHash('sha256')
        .update(Buffer.of(0))
        .update(`v3.${kid}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`)
        .digest();
    const guess = (audience: string) => leaf({ ...payloads[2], aud: audience });
    const guessed = createHash('sha256')
      .update(Buffer.of(1))
      .update(guess('auth'))
      .update(guess('content'))
      .digest();
    expect(guessed.equals(pairNode)).toBe(false);
    // Each is accepted by its own service only.
    for (const [i, audience] of ['auth', 'content', 'notifier'].entries()) {
      const v = new IdentityVerifier({ audience, publicKeys: [gateway.publicKey] });
      for (const [j, token] of tokens.entries())
        expect(v.verify(token, asSeen(same)).ok, `${audience} given ${j}`).toBe(i === j);
    }
  });

  it('refuses a v3 assertion without its random bytes, even under the gateway’s signature', () => {
    const [token] = signer.signBatch([request(0)]) as [string];
    const [, kid, encoded] = token.split('.') as string[];
    const { n: _n, ...bare } = JSON.parse(Buffer.from(encoded as string, 'base64url').toString());
    const v = verifier();
    for (const payload of [bare, { ...bare, n: 'short' }, { ...bare, n: 7 }]) {
      const body = `v3.${kid}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      const root = createHash('sha256').update(Buffer.of(0)).update(body).digest();
      const sig = sign(
        null,
        Buffer.from(`v3-root.${kid}.${root.toString('base64url')}`),
        gateway.privateKey,
      ).toString('base64url');
      expect(v.verify(`${body}.AA.${sig}`, asSeen(request(0)))).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('is remembered by the replay guard for as long as it can be accepted', () => {
    // An assertion of the longest life, made at the start of a second; the instants a service accepts
    // it, to the millisecond (found by bisection: acceptance is one interval).
    const iat = Math.floor(NOW / 1000) * 1000;
    const r = { ...request(0), now: iat, ttlSeconds: MAX_ASSERTION_LIFE_SECONDS };
    const [token] = signer.signBatch([r]) as [string];
    const v = verifier();
    const accepted = (now: number) => v.verify(token, { ...asSeen(r), now }).ok;
    const edge = (inside: number, outside: number) => {
      while (Math.abs(outside - inside) > 1) {
        const mid = Math.floor((inside + outside) / 2);
        if (accepted(mid)) inside = mid;
        else outside = mid;
      }
      return inside;
    };
    expect(accepted(iat)).toBe(true);
    const first = edge(iat, iat - 60_000);
    const last = edge(iat, iat + 60_000);
    expect(last - first).toBeGreaterThan(20_000);
    // The guard keeps a key at least one period (ReplayGuard); it must outlast the acceptance.
    expect(last - first).toBeLessThan(REPLAY_MEMORY_MS);
  });

  it('remembers only signatures that verified, and at most VERIFIED_ROOTS of them', () => {
    const v = verifier();
    const reqs = batchOf(2);
    const [first, second] = signer.signBatch(reqs) as [string, string];
    const parts = first.split('.');
    const sig = Buffer.from(parts[4] as string, 'base64url');
    sig[0] = (sig[0] as number) ^ 1;
    const bad = [...parts.slice(0, 4), sig.toString('base64url')].join('.');
    expect(v.verify(bad, asSeen(reqs[0] as AssertionRequest))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    expect(v.verify(bad, asSeen(reqs[0] as AssertionRequest))).toEqual({
      ok: false,
      reason: 'bad-signature',
    });
    expect(v.signatureChecks).toBe(2);
    expect(v.verify(first, asSeen(reqs[0] as AssertionRequest)).ok).toBe(true);
    expect(v.verify(bad, asSeen(reqs[0] as AssertionRequest)).ok).toBe(false);
    expect(v.signatureChecks).toBe(4);
    // The rest of the batch is checked by its hashes; once VERIFIED_ROOTS later batches have verified,
    // the batch's signature is checked again.
    expect(v.verify(second, asSeen(reqs[1] as AssertionRequest)).ok).toBe(true);
    expect(v.signatureChecks).toBe(4);
    for (let b = 0; b < VERIFIED_ROOTS; b++) {
      const r = request(1000 + b);
      expect(v.verify(signer.signBatch([r])[0] as string, asSeen(r)).ok).toBe(true);
    }
    expect(v.signatureChecks).toBe(4 + VERIFIED_ROOTS);
    expect(v.verify(second, asSeen(reqs[1] as AssertionRequest)).ok).toBe(true);
    expect(v.signatureChecks).toBe(5 + VERIFIED_ROOTS);
  });
});

describe('BatchingSigner', () => {
  it('signs what is asked in one turn of the event loop together, MAX_BATCH at most per signature', async () => {
    const sizes: number[] = [];
    const batching = new BatchingSigner(signer, (size) => sizes.push(size));
    const reqs = batchOf(MAX_BATCH + 36);
    const tokens = await Promise.all(reqs.map((r) => batching.sign(r)));
    expect(sizes).toEqual([MAX_BATCH, 36]);
    const alone = request(500);
    const late = await batching.sign(alone);
    expect(sizes).toEqual([MAX_BATCH, 36, 1]);
    const v = verifier();
    tokens.forEach((token, i) => {
      expect(v.verify(token, asSeen(reqs[i] as AssertionRequest)).ok, `${i}`).toBe(true);
    });
    expect(v.verify(late, asSeen(alone)).ok).toBe(true);
    expect(v.signatureChecks).toBe(3);
  });
});

describe('the identity plugin with batched assertions', () => {
  it('accepts each once, and each neighbour in a batch for its own request only', async () => {
    const app = Fastify({ requestIdHeader: 'x-request-id' });
    await app.register(identityPlugin, { audience: 'content', publicKeys: [gateway.publicKey] });
    app.get('/me', async (req) => req.identity);
    const me = { ...request(0), method: 'GET', url: '/me', requestId: 'req-me', now: Date.now() };
    const [token, neighbour] = signer.signBatch([me, { ...me, requestId: 'req-other' }]) as [string, string];
    const send = (t: string, id = 'req-me') =>
      app.inject({ url: '/me', headers: { [IDENTITY_HEADER]: t, 'x-request-id': id } });
    expect((await send(token)).json()).toEqual(alice);
    expect((await send(token)).statusCode).toBe(401);
    // Its neighbour in the batch is another assertion, for its own request id only.
    expect((await send(neighbour)).statusCode).toBe(401);
    expect((await send(neighbour, 'req-other')).statusCode).toBe(200);
    await app.close();
  });
});
