/**
 * The identity assertion: how the gateway tells a service who is calling.
 *
 * The gateway resolves the session token once, then forwards an `x-atoll-identity` header on every
 * request it sends a service, in one of two forms, both Ed25519 under the gateway's key:
 *
 * - `v3.<kid>.<payload>.<proof>.<signature>`, what the gateway sends: one signature covers a batch of
 *   assertions (those the gateway made in one turn of its event loop, at most MAX_BATCH). They are the
 *   leaves of a Merkle tree (SHA-256; a leaf is H(0x00, "v3.<kid>.<payload>"), a node H(0x01, left,
 *   right), the tree padded with a fixed empty leaf to a power of two), the signature is
 *   Ed25519("v3-root.<kid>.<root>"), and each assertion carries its own proof: its index (one byte) and
 *   the sibling hashes from its leaf to the root; its payload holds 16 random bytes (`n`), so the sibling
 *   hashes tell a service nothing it could check a guess against. A service recomputes the root from the leaf and the
 *   proof, and checks the signature over it once per batch: it remembers the last VERIFIED_ROOTS
 *   root-and-signature pairs that verified (only those), so the other assertions of a batch cost a few
 *   hashes instead of an Ed25519 verification each. Leaves and nodes are hashed with different prefixes
 *   and the padding leaf is no leaf's hash, so no node passes for an assertion.
 * - `v2.<kid>.<payload>.<signature>`, one signature per assertion, Ed25519("v2.<kid>.<payload>"): what the
 *   test kit's `gatewayHeaders` sends, and what a gateway of the previous version sends during an upgrade.
 *
 * Payload is base64url JSON. Only the gateway holds the private key; services hold public keys, so a
 * service can check an assertion and can never make one (a compromised service cannot speak for anyone
 * to another service).
 *
 * The payload says who the caller is (nobody, for an anonymous request), whether the gateway could not
 * ask the session store (then "nobody" is "unknown"), from which client address the request came, and
 * binds the assertion to one request: the audience (the service it is for), the HTTP method, the request
 * target (path and query exactly as the service receives it, i.e. Fastify's `request.url`, by its
 * SHA-256), the request id, and a life of at most 10 seconds. A header captured inside the network
 * therefore works nowhere else: not on another service, another route, another method or another request
 * id; and each service accepts it once only (plugin.ts), keyed on its `replayKey` (a v2 assertion's
 * signature bytes, a v3 assertion's leaf hash: both name the signed payload).
 *
 * Decoding is strict: every part must be the one canonical base64url spelling of its bytes (Node decodes
 * leniently, so `abc` and `abd` can be the same bytes: we re-encode and compare), the signature exactly
 * 64 bytes, a proof 1 + 32 × depth bytes with depth at most MAX_DEPTH and an index below 2^depth. `kid` names the signing key (a hash of its public key), so services can accept a new and an
 * old key while a new one rolls out.
 */
import {
  createPrivateKey,
  createPublicKey,
  sign as edSign,
  verify as edVerify,
  hash,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

export const IDENTITY_HEADER = 'x-atoll-identity';
/**
 * Every header with this prefix is internal: the gateway strips any a client sends, and services read
 * none but the assertion.
 */
export const INTERNAL_HEADER_PREFIX = 'x-atoll-';

export interface Identity {
  userId: string;
  username: string;
  /** The session's public id (a hash of the token, never the token). */
  sessionId: string;
  roles: string[];
}

/** What the gateway signs. */
interface Payload {
  /** The service the assertion is for. */
  aud: string;
  /** The HTTP method, upper case. */
  mth: string;
  /**
   * SHA-256 of the request target (path and query) as the service receives it, base64url: a URL may be
   * up to the services' 8 KB, the assertion stays small.
   */
  uh: string;
  rid: string;
  /** The client's address as the gateway determined it. */
  ip: string;
  iat: number;
  exp: number;
  /** Absent for an anonymous request. */
  sub?: string;
  name?: string;
  sid?: string;
  roles?: string[];
  /** Present (true) when the gateway could not ask the session store: the caller is unknown. */
  su?: true;
  /**
   * v3 only: 16 random bytes, base64url. A proof shows a service its neighbours' leaf hashes; with
   * this in every leaf, no guess of a neighbour's payload (the same request sent to another service,
   * say) can be checked against them.
   */
  n?: string;
}

/** What a verified assertion tells a service. */
export interface RequestContext {
  identity: Identity | null;
  clientIp: string;
  /** The gateway could not reach the session store, so "no identity" means "unknown", not "nobody". */
  sessionUnavailable: boolean;
}

export type VerifyFailure =
  | 'malformed'
  | 'unknown-key'
  | 'bad-signature'
  | 'expired'
  | 'wrong-audience'
  | 'wrong-method'
  | 'wrong-url'
  | 'wrong-request';

/** One signature per assertion: the previous version, still accepted, and what the test kit's `gatewayHeaders` sends. */
const SINGLE = 'v2';
/** One signature per batch, each assertion with its Merkle proof: what the gateway sends. */
const BATCHED = 'v3';
/** The random bytes in each v3 payload, and their length in base64url. */
const NONCE_BYTES = 16;
const NONCE_CHARS = 22;
/** The most assertions one signature covers: a proof holds at most log2(MAX_BATCH) hashes. */
export const MAX_BATCH = 64;
const MAX_DEPTH = 6;
/** How many verified batch signatures a service remembers (a batch's assertions arrive together). */
export const VERIFIED_ROOTS = 1024;
const HASH_BYTES = 32;
/** The longest proof: an index byte and MAX_DEPTH hashes, in base64url. */
const MAX_PROOF_CHARS = Math.ceil(((1 + MAX_DEPTH * HASH_BYTES) * 4) / 3);
const NODE = Buffer.of(1);
/** How long an assertion lives: it is used within milliseconds of being made. */
export const ASSERTION_TTL_SECONDS = 5;
/** Clock skew tolerated between the gateway and a service. */
export const CLOCK_SKEW_SECONDS = 5;
/** The longest life a service accepts in an assertion, whatever the signer asked for. */
export const MAX_ASSERTION_LIFE_SECONDS = 10;
/** Ed25519 signatures are 64 bytes: 86 base64url characters. */
const SIGNATURE_BYTES = 64;
const SIGNATURE_CHARS = 86;
/** A key id: the first 8 bytes of SHA-256 of the raw public key, in base64url. */
const KID_CHARS = 11;
/** An assertion longer than this is refused unread (a header is bounded anyway; this bounds the work). */
const MAX_PAYLOAD_CHARS = 4096;

/**
 * SHA-256 in one call: `crypto.hash` makes no Hash object, which halves the cost of these short inputs
 * (a service hashes three to eight of them per request).
 */
const sha256 = (data: Buffer | string): Buffer => hash('sha256', data, 'buffer');
/** H(0x00, body): a string's first character U+0000 is the byte 0x00 in UTF-8. */
const leafHash = (body: string): Buffer => sha256(`\u0000${body}`);
const nodeHash = (left: Buffer, right: Buffer): Buffer => sha256(Buffer.concat([NODE, left, right]));
/** What pads a batch to a power of two: no assertion's leaf hash (those are H(0x00, …)). */
const EMPTY_LEAF = sha256(Buffer.of(2));
/** The message a batch's signature covers. */
const rootMessage = (kid: string, root: Buffer): Buffer =>
  Buffer.from(`${BATCHED}-root.${kid}.${root.toString('base64url')}`);

/** What the payload holds for a request target: its SHA-256, base64url. */
function urlHash(url: string): string {
  return hash('sha256', url, 'base64url');
}

/** The key id of an Ed25519 public key: stable, derived, never configured. */
export function keyIdOf(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return sha256(raw).subarray(0, 8).toString('base64url');
}

/** Bytes from base64url only when `text` is their one canonical spelling (no padding, no stray bits). */
export function strictBase64url(text: string): Buffer | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}

function ed25519(key: KeyObject, kind: 'public' | 'private'): KeyObject {
  if (key.type !== kind || key.asymmetricKeyType !== 'ed25519')
    throw new Error(
      `expected an Ed25519 ${kind} key, got a ${key.asymmetricKeyType ?? 'secret'} ${key.type} key`,
    );
  return key;
}

/** PEM blocks in `text`, or `text` itself split on commas and whitespace as base64 DER. */
function keyTexts(text: string): Array<{ key: string | Buffer; format: 'pem' | 'der' }> {
  const pem = text.match(/-----BEGIN [A-Z ]+-----[\s\S]+?-----END [A-Z ]+-----/g);
  if (pem) return pem.map((key) => ({ key, format: 'pem' }));
  return text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((b64) => ({ key: Buffer.from(b64, 'base64'), format: 'der' }));
}

/** An Ed25519 private key from PEM (PKCS#8) or the base64 of its DER. */
export function parsePrivateKey(text: string): KeyObject {
  const [only, ...more] = keyTexts(text);
  if (!only || more.length > 0) throw new Error('expected exactly one Ed25519 private key');
  return ed25519(
    only.format === 'pem'
      ? createPrivateKey(only.key)
      : createPrivateKey({ key: only.key as Buffer, format: 'der', type: 'pkcs8' }),
    'private',
  );
}

/** One or more Ed25519 public keys from PEM (SPKI) blocks or comma-separated base64 of their DER. */
export function parsePublicKeys(text: string): KeyObject[] {
  const keys = keyTexts(text).map(({ key, format }) =>
    ed25519(
      format === 'pem'
        ? createPublicKey(key)
        : createPublicKey({ key: key as Buffer, format: 'der', type: 'spki' }),
      'public',
    ),
  );
  if (keys.length === 0) throw new Error('expected at least one Ed25519 public key');
  return keys;
}

/** What the gateway knows about one request it forwards. */
export interface AssertionRequest {
  audience: string;
  method: string;
  /** The request target the service will receive: path and query, byte for byte. */
  url: string;
  requestId: string;
  clientIp: string;
  identity: Identity | null;
  /** The gateway could not ask the session store. */
  sessionUnavailable?: boolean;
  ttlSeconds?: number;
  now?: number;
}

/** The gateway's half: holds the private key and makes assertions. */
export class IdentitySigner {
  readonly keyId: string;
  private readonly key: KeyObject;

  constructor(privateKey: KeyObject) {
    this.key = ed25519(privateKey, 'private');
    this.keyId = keyIdOf(createPublicKey(privateKey));
  }

  /** The payload of one assertion, base64url. */
  private payload(req: AssertionRequest, nonce?: string): string {
    const iat = Math.floor((req.now ?? Date.now()) / 1000);
    const { identity } = req;
    const payload: Payload = {
      aud: req.audience,
      mth: req.method.toUpperCase(),
      uh: urlHash(req.url),
      rid: req.requestId,
      ip: req.clientIp,
      iat,
      exp: iat + (req.ttlSeconds ?? ASSERTION_TTL_SECONDS),
      ...(identity
        ? { sub: identity.userId, name: identity.username, sid: identity.sessionId, roles: identity.roles }
        : {}),
      ...(req.sessionUnavailable ? { su: true as const } : {}),
      ...(nonce ? { n: nonce } : {}),
    };
    return Buffer.from(JSON.stringify(payload)).toString('base64url');
  }

  /** One assertion with a signature of its own (v2). */
  sign(req: AssertionRequest): string {
    const body = `${SINGLE}.${this.keyId}.${this.payload(req)}`;
    return `${body}.${edSign(null, Buffer.from(body), this.key).toString('base64url')}`;
  }

  /** Assertions for up to MAX_BATCH requests under one signature (v3), in the order of `reqs`. */
  signBatch(reqs: readonly AssertionRequest[]): string[] {
    if (reqs.length === 0 || reqs.length > MAX_BATCH)
      throw new RangeError(`a batch holds 1 to ${MAX_BATCH} assertions, not ${reqs.length}`);
    const nonces = randomBytes(NONCE_BYTES * reqs.length);
    const bodies = reqs.map((req, i) => {
      const nonce = nonces.subarray(i * NONCE_BYTES, (i + 1) * NONCE_BYTES).toString('base64url');
      return `${BATCHED}.${this.keyId}.${this.payload(req, nonce)}`;
    });
    // levels[0] are the leaves, padded to a power of two; levels[depth] is the root alone.
    const width = 2 ** Math.ceil(Math.log2(bodies.length));
    let level = Array.from({ length: width }, (_, i) => {
      const body = bodies[i];
      return body === undefined ? EMPTY_LEAF : leafHash(body);
    });
    const levels = [level];
    while (level.length > 1) {
      const up: Buffer[] = [];
      for (let i = 0; i < level.length; i += 2) up.push(nodeHash(level[i] as Buffer, level[i + 1] as Buffer));
      levels.push(up);
      level = up;
    }
    const signature = edSign(null, rootMessage(this.keyId, level[0] as Buffer), this.key).toString(
      'base64url',
    );
    return bodies.map((body, index) => {
      const siblings = levels.slice(0, -1).map((nodes, depth) => nodes[(index >> depth) ^ 1] as Buffer);
      const proof = Buffer.concat([Buffer.of(index), ...siblings]).toString('base64url');
      return `${body}.${proof}.${signature}`;
    });
  }
}

/**
 * Signs the assertions asked for in one turn of the event loop together, one v3 batch per MAX_BATCH: under
 * load the requests that a turn's reads (the client's bytes, a burst of Redis replies) set going share a
 * signature, and a request alone waits for nothing but the rest of its turn.
 */
export class BatchingSigner {
  private pending: Array<{
    req: AssertionRequest;
    resolve: (token: string) => void;
    reject: (error: unknown) => void;
  }> = [];
  private scheduled = false;
  readonly signer: IdentitySigner;
  private readonly onBatch: (size: number) => void;

  /** `onBatch` hears each batch's size (a metric). */
  constructor(signer: IdentitySigner, onBatch: (size: number) => void = () => {}) {
    this.signer = signer;
    this.onBatch = onBatch;
  }

  sign(req: AssertionRequest): Promise<string> {
    return new Promise((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.flush);
      }
    });
  }

  private readonly flush = (): void => {
    this.scheduled = false;
    const all = this.pending;
    this.pending = [];
    for (let start = 0; start < all.length; start += MAX_BATCH) {
      const batch = all.slice(start, start + MAX_BATCH);
      try {
        const tokens = this.signer.signBatch(batch.map((p) => p.req));
        this.onBatch(batch.length);
        for (const [i, p] of batch.entries()) p.resolve(tokens[i] as string);
      } catch (error) {
        for (const p of batch) p.reject(error);
      }
    }
  };
}

/** What a service checks an assertion against: its own request. */
export interface VerifyRequest {
  method: string;
  url: string;
  requestId: string;
  now?: number;
}

export type VerifyResult =
  | ({
      ok: true;
      /** Names the signed payload, one spelling per payload: what the replay guard remembers. */
      replayKey: string;
    } & RequestContext)
  | { ok: false; reason: VerifyFailure };

const isString = (v: unknown): v is string => typeof v === 'string';

/** A service's half: public keys only (the current one and, during a rotation, the next or previous). */
export class IdentityVerifier {
  readonly audience: string;
  private readonly keys: Map<string, KeyObject>;
  private readonly skewSeconds: number;
  /** Batch signatures that verified: `<kid>.<root>.<signature>`, oldest first. */
  private readonly verifiedRoots = new Set<string>();
  /** Ed25519 verifications done (a metric, and how the tests see a batch verified once). */
  signatureChecks = 0;

  constructor(opts: { audience: string; publicKeys: readonly KeyObject[]; skewSeconds?: number }) {
    if (opts.publicKeys.length === 0) throw new Error('at least one identity public key is required');
    this.audience = opts.audience;
    this.keys = new Map(opts.publicKeys.map((k) => [keyIdOf(ed25519(k, 'public')), k]));
    this.skewSeconds = opts.skewSeconds ?? CLOCK_SKEW_SECONDS;
  }

  verify(token: string, req: VerifyRequest): VerifyResult {
    const parts = token.split('.');
    const batched = parts[0] === BATCHED && parts.length === 5;
    if (!batched && !(parts[0] === SINGLE && parts.length === 4)) return { ok: false, reason: 'malformed' };
    const kid = parts[1] ?? '';
    const encoded = parts[2] ?? '';
    const sig = parts[parts.length - 1] ?? '';
    if (kid.length !== KID_CHARS || sig.length !== SIGNATURE_CHARS || encoded.length > MAX_PAYLOAD_CHARS)
      return { ok: false, reason: 'malformed' };
    const signature = strictBase64url(sig);
    const json = strictBase64url(encoded);
    if (!signature || signature.length !== SIGNATURE_BYTES || !json || !strictBase64url(kid))
      return { ok: false, reason: 'malformed' };
    const key = this.keys.get(kid);
    if (!key) return { ok: false, reason: 'unknown-key' };
    const body = `${parts[0]}.${kid}.${encoded}`;
    let replayKey: string;
    if (batched) {
      const proof = (parts[3] ?? '').length <= MAX_PROOF_CHARS ? strictBase64url(parts[3] ?? '') : null;
      const depth = proof ? (proof.length - 1) / HASH_BYTES : -1;
      const index = proof?.[0] ?? 0;
      if (!proof || !Number.isInteger(depth) || depth < 0 || depth > MAX_DEPTH || index >= 2 ** depth)
        return { ok: false, reason: 'malformed' };
      const leaf = leafHash(body);
      let node = leaf;
      for (let d = 0; d < depth; d++) {
        const sibling = proof.subarray(1 + d * HASH_BYTES, 1 + (d + 1) * HASH_BYTES);
        node = (index >> d) & 1 ? nodeHash(sibling, node) : nodeHash(node, sibling);
      }
      if (!this.rootSigned(kid, key, node, sig, signature)) return { ok: false, reason: 'bad-signature' };
      replayKey = leaf.toString('latin1');
    } else {
      this.signatureChecks++;
      if (!edVerify(null, Buffer.from(body), key, signature)) return { ok: false, reason: 'bad-signature' };
      replayKey = signature.toString('latin1');
    }
    return this.checkPayload(json, req, replayKey, batched);
  }

  /** Whether the gateway signed this batch's root: verified once, then remembered (only if it did). */
  private rootSigned(kid: string, key: KeyObject, root: Buffer, sig: string, signature: Buffer): boolean {
    const id = `${kid}.${root.toString('base64url')}.${sig}`;
    if (this.verifiedRoots.has(id)) return true;
    this.signatureChecks++;
    if (!edVerify(null, rootMessage(kid, root), key, signature)) return false;
    if (this.verifiedRoots.size >= VERIFIED_ROOTS) {
      const oldest = this.verifiedRoots.values().next().value as string;
      this.verifiedRoots.delete(oldest);
    }
    this.verifiedRoots.add(id);
    return true;
  }

  /** The signed payload's claims, checked against the request. */
  private checkPayload(json: Buffer, req: VerifyRequest, replayKey: string, batched: boolean): VerifyResult {
    let p: Partial<Record<keyof Payload, unknown>>;
    try {
      p = JSON.parse(json.toString('utf8')) as typeof p;
    } catch {
      return { ok: false, reason: 'malformed' };
    }
    if (
      !p ||
      typeof p !== 'object' ||
      ![p.aud, p.mth, p.uh, p.rid, p.ip].every(isString) ||
      typeof p.iat !== 'number' ||
      typeof p.exp !== 'number' ||
      (p.su !== undefined && p.su !== true) ||
      (batched && !(isString(p.n) && p.n.length === NONCE_CHARS))
    )
      return { ok: false, reason: 'malformed' };
    const anonymous = p.sub === undefined;
    if (
      !anonymous &&
      (!isString(p.sub) ||
        !isString(p.name) ||
        !isString(p.sid) ||
        !Array.isArray(p.roles) ||
        !p.roles.every(isString))
    )
      return { ok: false, reason: 'malformed' };
    const now = Math.floor((req.now ?? Date.now()) / 1000);
    if (
      p.exp - p.iat > MAX_ASSERTION_LIFE_SECONDS ||
      p.exp < p.iat ||
      now > p.exp + this.skewSeconds ||
      now < p.iat - this.skewSeconds
    )
      return { ok: false, reason: 'expired' };
    if (p.aud !== this.audience) return { ok: false, reason: 'wrong-audience' };
    if (p.mth !== req.method.toUpperCase()) return { ok: false, reason: 'wrong-method' };
    if (p.uh !== urlHash(req.url)) return { ok: false, reason: 'wrong-url' };
    if (p.rid !== req.requestId) return { ok: false, reason: 'wrong-request' };
    return {
      ok: true,
      replayKey,
      clientIp: p.ip as string,
      sessionUnavailable: p.su === true,
      identity: anonymous
        ? null
        : {
            userId: p.sub as string,
            username: p.name as string,
            sessionId: p.sid as string,
            roles: p.roles as string[],
          },
    };
  }
}
