/**
 * Identity key pairs for the stack: the gateway signs identity assertions with the Ed25519 private key,
 * every other service checks them with the public key (@atoll/identity).
 */
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
} from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_HEADER, type Identity, IdentitySigner } from '@atoll/identity';

export interface IdentityKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** IDENTITY_PRIVATE_KEY: the private key as one line of base64 DER (PKCS#8). */
  privateKeyText: string;
  /** IDENTITY_PUBLIC_KEYS: the public key as one line of base64 DER (SPKI). */
  publicKeyText: string;
}

/** A fresh key pair, in memory. */
export function identityKeyPair(): IdentityKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKey,
    publicKey,
    privateKeyText: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    publicKeyText: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
}

export interface IdentityKeyFiles {
  /** IDENTITY_PRIVATE_KEY_FILE: PEM (PKCS#8), mode 0600. */
  privateKeyFile: string;
  /** IDENTITY_PUBLIC_KEYS_FILE: PEM (SPKI). */
  publicKeysFile: string;
}

/**
 * A key pair kept in `dir` (made 0700): made on the first call, read afterwards, never replaced. The
 * private key file is written 0600 from the start (no moment in which another user could read it) and
 * set to 0600 again on every call, in case it was copied in with looser permissions.
 */
export function ensureIdentityKeyFiles(dir: string): IdentityKeyFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const privateKeyFile = join(dir, 'identity.key');
  const publicKeysFile = join(dir, 'identity.pub');
  if (!existsSync(privateKeyFile)) {
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(privateKeyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), {
      mode: 0o600,
      flag: 'wx',
    });
  }
  chmodSync(privateKeyFile, 0o600);
  // The public half is derived from the private one each time, so the two always belong together.
  const publicKey = createPublicKey(createPrivateKey(readFileSync(privateKeyFile)));
  writeFileSync(publicKeysFile, publicKey.export({ format: 'pem', type: 'spki' }), { mode: 0o644 });
  return { privateKeyFile, publicKeysFile };
}

export interface AssertedRequest {
  method?: string;
  /** The request target exactly as the service receives it (path and query). */
  url: string;
  identity?: Identity | null;
  clientIp?: string;
  requestId?: string;
  sessionUnavailable?: boolean;
}

/**
 * The headers the gateway would add to `req` on its way to `audience`: a request id and an identity
 * assertion signed with `keys`, for tests that call a service directly as the gateway does.
 */
export function gatewayHeaders(
  keys: Pick<IdentityKeys, 'privateKey'>,
  audience: string,
  req: AssertedRequest,
): Record<string, string> {
  const requestId = req.requestId ?? randomUUID();
  return {
    'x-request-id': requestId,
    [IDENTITY_HEADER]: signerOf(keys.privateKey).sign({
      audience,
      method: req.method ?? 'GET',
      url: req.url,
      requestId,
      clientIp: req.clientIp ?? '127.0.0.1',
      identity: req.identity ?? null,
      sessionUnavailable: req.sessionUnavailable ?? false,
    }),
  };
}

/**
 * The headers the gateway adds to each of `reqs` when it makes their assertions in one turn of its event
 * loop: one signature for them all (v3; at most MAX_BATCH requests).
 */
export function gatewayHeadersBatch(
  keys: Pick<IdentityKeys, 'privateKey'>,
  audience: string,
  reqs: readonly AssertedRequest[],
): Array<Record<string, string>> {
  const requestIds = reqs.map((req) => req.requestId ?? randomUUID());
  const tokens = signerOf(keys.privateKey).signBatch(
    reqs.map((req, i) => ({
      audience,
      method: req.method ?? 'GET',
      url: req.url,
      requestId: requestIds[i] as string,
      clientIp: req.clientIp ?? '127.0.0.1',
      identity: req.identity ?? null,
      sessionUnavailable: req.sessionUnavailable ?? false,
    })),
  );
  return tokens.map((token, i) => ({ 'x-request-id': requestIds[i] as string, [IDENTITY_HEADER]: token }));
}

const signers = new WeakMap<KeyObject, IdentitySigner>();
function signerOf(privateKey: KeyObject): IdentitySigner {
  const known = signers.get(privateKey);
  if (known) return known;
  const signer = new IdentitySigner(privateKey);
  signers.set(privateKey, signer);
  return signer;
}
