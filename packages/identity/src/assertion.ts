/**
 * The identity assertion: how the gateway tells a service who is calling.
 *
 * The gateway resolves the session token once, then forwards
 * `x-atoll-identity: v2.<kid>.<payload>.<signature>` on every request it sends a service, where payload is
 * base64url JSON and signature is Ed25519(private key, "v2.<kid>.<payload>") in base64url. Only the
 * gateway holds the private key; services hold public keys, so a service can check an assertion and can
 * never make one (a compromised service cannot speak for anyone to another service).
 *
 * The payload says who the caller is (nobody, for an anonymous request), whether the gateway could not
 * ask the session store (then "nobody" is "unknown"), from which client address the request came, and
 * binds the assertion to one request: the audience (the service it is for), the HTTP method, the request
 * target (path and query exactly as the service receives it, i.e. Fastify's `request.url`, by its
 * SHA-256), the request id, and a life of at most 10 seconds. A header captured inside the network
 * therefore works nowhere else: not on another service, another route, another method or another request
 * id; and each service accepts it once only (plugin.ts), keyed on the signature's bytes.
 *
 * Decoding is strict: every part must be the one canonical base64url spelling of its bytes (Node decodes
 * leniently, so `abc` and `abd` can be the same bytes: we re-encode and compare) and the signature exactly
 * 64 bytes. `kid` names the signing key (a hash of its public key), so services can accept a new and an
 * old key while a new one rolls out.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  sign as edSign,
  verify as edVerify,
  type KeyObject,
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

const VERSION = 'v2';
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

/** What the payload holds for a request target: its SHA-256, base64url. */
function urlHash(url: string): string {
  return createHash('sha256').update(url).digest('base64url');
}

/** The key id of an Ed25519 public key: stable, derived, never configured. */
export function keyIdOf(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  return createHash('sha256').update(raw).digest().subarray(0, 8).toString('base64url');
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

  sign(req: AssertionRequest): string {
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
    };
    const body = `${VERSION}.${this.keyId}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${body}.${edSign(null, Buffer.from(body), this.key).toString('base64url')}`;
  }
}

/** What a service checks an assertion against: its own request. */
export interface VerifyRequest {
  method: string;
  url: string;
  requestId: string;
  now?: number;
}

export type VerifyResult =
  | ({ ok: true; signature: Buffer } & RequestContext)
  | { ok: false; reason: VerifyFailure };

const isString = (v: unknown): v is string => typeof v === 'string';

/** A service's half: public keys only (the current one and, during a rotation, the next or previous). */
export class IdentityVerifier {
  readonly audience: string;
  private readonly keys: Map<string, KeyObject>;
  private readonly skewSeconds: number;

  constructor(opts: { audience: string; publicKeys: readonly KeyObject[]; skewSeconds?: number }) {
    if (opts.publicKeys.length === 0) throw new Error('at least one identity public key is required');
    this.audience = opts.audience;
    this.keys = new Map(opts.publicKeys.map((k) => [keyIdOf(ed25519(k, 'public')), k]));
    this.skewSeconds = opts.skewSeconds ?? CLOCK_SKEW_SECONDS;
  }

  verify(token: string, req: VerifyRequest): VerifyResult {
    const parts = token.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION) return { ok: false, reason: 'malformed' };
    const [, kid = '', encoded = '', sig = ''] = parts;
    if (kid.length !== KID_CHARS || sig.length !== SIGNATURE_CHARS || encoded.length > MAX_PAYLOAD_CHARS)
      return { ok: false, reason: 'malformed' };
    const signature = strictBase64url(sig);
    const json = strictBase64url(encoded);
    if (!signature || signature.length !== SIGNATURE_BYTES || !json || !strictBase64url(kid))
      return { ok: false, reason: 'malformed' };
    const key = this.keys.get(kid);
    if (!key) return { ok: false, reason: 'unknown-key' };
    const body = token.slice(0, token.length - SIGNATURE_CHARS - 1);
    if (!edVerify(null, Buffer.from(body), key, signature)) return { ok: false, reason: 'bad-signature' };

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
      (p.su !== undefined && p.su !== true)
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
      signature,
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
