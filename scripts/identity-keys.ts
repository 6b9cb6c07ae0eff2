/**
 * `pnpm identity-keys`: a new Ed25519 identity key pair for a deployment, printed as the two lines a
 * `.env` file (docker compose) takes: IDENTITY_PRIVATE_KEY for the gateway only, IDENTITY_PUBLIC_KEYS for
 * auth, content and notifier. Each is the base64 of the key's DER on one line. To rotate, give the
 * services both public keys (comma-separated), then the gateway the new private key, then drop the old
 * public key.
 */
import { generateKeyPairSync } from 'node:crypto';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
console.log(`IDENTITY_PRIVATE_KEY=${privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64')}`);
console.log(`IDENTITY_PUBLIC_KEYS=${publicKey.export({ format: 'der', type: 'spki' }).toString('base64')}`);
