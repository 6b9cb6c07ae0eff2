/**
 * Password hashing with scrypt (memory-hard, in Node's crypto: no native addon to build). Stored as
 * `scrypt$<N>$<r>$<p>$<salt>$<hash>` so the cost can be raised without invalidating old hashes: a hash
 * below the current cost still verifies, and the login that proves the password replaces it.
 *
 * The cost is N = 2^17, r = 8, p = 1 by default (OWASP's minimum for scrypt), configurable per deployment
 * (PASSWORD_SCRYPT_LOG2_N, 15 or more). One hash needs 128 · N · r bytes: 128 MiB at 2^17, 32 MiB at 2^15;
 * Node hashes on the libuv thread pool, so at most that many (4 by default) run at once.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';

export const DEFAULT_LOG2_N = 17;
export const MIN_LOG2_N = 15;
/** The highest cost a stored hash may name (1 GiB at r = 8): anything above is refused, not computed. */
const MAX_LOG2_N = 20;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;

interface Cost {
  n: number;
  r: number;
  p: number;
}

function scrypt(password: string, salt: Buffer, { n, r, p }: Cost): Promise<Buffer> {
  // What OpenSSL allocates: V (128 · r · N bytes) and B (128 · r · p bytes), plus room for its own use.
  const maxmem = 128 * r * (n + p + 2) + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, KEY_LENGTH, { N: n, r, p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** A stored hash, or null when it is not one this module wrote (or names a cost out of bounds). */
function parse(stored: string): { cost: Cost; salt: Buffer; key: Buffer } | null {
  const [scheme, n, r, p, salt, key, ...rest] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key || rest.length > 0) return null;
  const cost = { n: Number(n), r: Number(r), p: Number(p) };
  const log2N = Math.log2(cost.n);
  if (!Number.isInteger(log2N) || log2N < 1 || log2N > MAX_LOG2_N) return null;
  if (!Number.isInteger(cost.r) || cost.r < 1 || cost.r > 32) return null;
  if (!Number.isInteger(cost.p) || cost.p < 1 || cost.p > 16) return null;
  return { cost, salt: Buffer.from(salt, 'base64url'), key: Buffer.from(key, 'base64url') };
}

async function hashAt(password: string, cost: Cost): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, cost);
  return `scrypt$${cost.n}$${cost.r}$${cost.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

/** Hashes and verifies passwords at one configured cost. */
export class PasswordHasher {
  private readonly cost: Cost;
  /** A real hash of nothing at the current cost, checked when there is no account: the same work. */
  private readonly dummy: Promise<string>;

  constructor(log2N = DEFAULT_LOG2_N) {
    if (!Number.isInteger(log2N) || log2N < MIN_LOG2_N || log2N > MAX_LOG2_N) {
      throw new RangeError(`scrypt log2(N) must be an integer from ${MIN_LOG2_N} to ${MAX_LOG2_N}`);
    }
    this.cost = { n: 2 ** log2N, r: R, p: P };
    this.dummy = hashAt(randomBytes(16).toString('hex'), this.cost);
    this.dummy.catch(() => undefined);
  }

  hash(password: string): Promise<string> {
    return hashAt(password, this.cost);
  }

  /**
   * Checks a password against a stored hash, or against a hash of nothing when there is none (unknown
   * account, or an account without a password): never valid then, and as slow as a real check.
   * `outdated`: the stored hash is below the current cost and should be replaced now.
   */
  async verify(password: string, stored: string | null): Promise<{ valid: boolean; outdated: boolean }> {
    const parsed = parse(stored ?? (await this.dummy));
    if (!parsed) return { valid: false, outdated: false };
    const actual = await scrypt(password, parsed.salt, parsed.cost);
    const matches = actual.length === parsed.key.length && timingSafeEqual(actual, parsed.key);
    const valid = stored !== null && matches;
    const { n, r, p } = parsed.cost;
    const outdated = valid && (n < this.cost.n || r < this.cost.r || p < this.cost.p);
    return { valid, outdated };
  }
}
