/**
 * Password hashing with Argon2id (OWASP's first choice; `@node-rs/argon2`, a prebuilt native addon from
 * the npm registry, run on libuv's thread pool). Stored as the PHC string
 * `$argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>`, so the cost travels with each hash and can
 * be raised without invalidating old ones: a hash below the current cost still verifies, and the login
 * that proves the password replaces it (`outdated`).
 *
 * Hashes of an earlier atoll, `scrypt$<N>$<r>$<p>$<salt>$<hash>`, still verify (always `outdated`): the
 * next successful login stores the password as Argon2id.
 *
 * The cost is m = 64 MiB, t = 3, p = 1 by default (docs/decisions.md, "Password hashing": about 40 ms here),
 * configurable per deployment, never below OWASP's minimum (m = 19 MiB, t = 2). Stored costs are bounded
 * before anything is computed, so a tampered row cannot make one check take a gigabyte.
 */
import { randomBytes, scrypt as scryptCallback, timingSafeEqual } from 'node:crypto';
import { type Algorithm, hash as argon2Hash, verify as argon2Verify } from '@node-rs/argon2';
import { limitAddress } from '../security/login-limiter.ts';
import { HashPool } from './hash-pool.ts';

export interface Argon2Cost {
  /** Memory in KiB (`m`). */
  memoryKiB: number;
  /** Passes over the memory (`t`). */
  iterations: number;
}

/** OWASP's minimum for Argon2id (m = 19 MiB, t = 2, p = 1): the lowest cost a deployment may set. */
export const MIN_COST: Argon2Cost = { memoryKiB: 19_456, iterations: 2 };
export const DEFAULT_COST: Argon2Cost = { memoryKiB: 65_536, iterations: 3 };
/** The highest cost a stored hash may name: anything above is refused, not computed. */
const MAX_MEMORY_KIB = 1_048_576;
const MAX_ITERATIONS = 16;
const PARALLELISM = 1;
// The package's `Algorithm` is a const enum, which isolated modules cannot read: Argon2id is 2.
const ARGON2ID = 2 as Algorithm;

const PHC =
  /^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,3}),p=(\d{1,2})\$[A-Za-z0-9+/]{11,64}\$[A-Za-z0-9+/]{16,128}$/;

function argon2(password: string, cost: Argon2Cost): Promise<string> {
  return argon2Hash(password, {
    algorithm: ARGON2ID,
    memoryCost: cost.memoryKiB,
    timeCost: cost.iterations,
    parallelism: PARALLELISM,
  });
}

/** The cost a stored Argon2id hash names, or null when it is not one, or names a cost out of bounds. */
function argon2Cost(stored: string): Argon2Cost | null {
  const match = PHC.exec(stored);
  if (!match) return null;
  const [memoryKiB, iterations, lanes] = match.slice(1).map(Number) as [number, number, number];
  if (memoryKiB < 8 * lanes || memoryKiB > MAX_MEMORY_KIB) return null;
  if (iterations < 1 || iterations > MAX_ITERATIONS || lanes < 1 || lanes > 16) return null;
  return { memoryKiB, iterations };
}

/** A stored scrypt hash of an earlier atoll, or null when it is not one (or names a cost out of bounds). */
function parseScrypt(stored: string): { n: number; r: number; p: number; salt: Buffer; key: Buffer } | null {
  const [scheme, n, r, p, salt, key, ...rest] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !key || rest.length > 0) return null;
  const cost = { n: Number(n), r: Number(r), p: Number(p) };
  const log2N = Math.log2(cost.n);
  if (!Number.isInteger(log2N) || log2N < 1 || log2N > 20) return null;
  if (!Number.isInteger(cost.r) || cost.r < 1 || cost.r > 32) return null;
  if (!Number.isInteger(cost.p) || cost.p < 1 || cost.p > 16) return null;
  const parsed = { ...cost, salt: Buffer.from(salt, 'base64url'), key: Buffer.from(key, 'base64url') };
  return parsed.key.length >= 16 && parsed.salt.length >= 8 ? parsed : null;
}

function scrypt(password: string, salt: Buffer, n: number, r: number, p: number, length: number) {
  // What OpenSSL allocates: V (128 · r · N bytes) and B (128 · r · p bytes), plus room for its own use.
  const maxmem = 128 * r * (n + p + 2) + 1024 * 1024;
  return new Promise<Buffer>((resolve, reject) => {
    scryptCallback(password, salt, length, { N: n, r, p, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/**
 * A scrypt hash in the format earlier atoll versions stored (N = 2^`log2N`, r = 8, p = 1). Only for
 * tests and the bench, which need such hashes to exist; nothing new is stored this way.
 */
export async function legacyScryptHash(password: string, log2N: number): Promise<string> {
  const salt = randomBytes(16);
  const key = await scrypt(password, salt, 2 ** log2N, 8, 1, 32);
  return `scrypt$${2 ** log2N}$8$1$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export function checkCost(cost: Argon2Cost): void {
  const { memoryKiB, iterations } = cost;
  if (!Number.isInteger(memoryKiB) || memoryKiB < MIN_COST.memoryKiB || memoryKiB > MAX_MEMORY_KIB) {
    throw new RangeError(
      `Argon2id memory must be an integer from ${MIN_COST.memoryKiB} to ${MAX_MEMORY_KIB} KiB`,
    );
  }
  if (!Number.isInteger(iterations) || iterations < MIN_COST.iterations || iterations > MAX_ITERATIONS) {
    throw new RangeError(
      `Argon2id iterations must be an integer from ${MIN_COST.iterations} to ${MAX_ITERATIONS}`,
    );
  }
}

/**
 * Hashes and verifies passwords at one configured cost, each operation admitted by a HashPool (503
 * `AUTH_HASHING_BUSY` when it is full).
 */
export class PasswordHasher {
  readonly cost: Argon2Cost;
  readonly pool: HashPool;
  /** A real hash of nothing at the current cost, checked when there is no account: the same work. */
  private readonly dummy: Promise<string>;

  constructor(
    cost: Argon2Cost = DEFAULT_COST,
    pool: HashPool = new HashPool({ concurrency: 2, queue: 16, perClient: 16 }),
  ) {
    checkCost(cost);
    this.cost = { ...cost };
    this.pool = pool;
    this.dummy = argon2(randomBytes(16).toString('hex'), this.cost);
    this.dummy.catch(() => undefined);
  }

  /** Throws AUTH_HASHING_BUSY now if a hash for a client at `ip` would be refused (HashPool.admit). */
  admit(ip: string): void {
    this.pool.admit(limitAddress(ip));
  }

  /** `ip`: the client's address, for its share of the pool (IPv6 per /64). */
  hash(password: string, ip: string | null = null): Promise<string> {
    return this.pool.run(() => argon2(password, this.cost), ip === null ? null : limitAddress(ip));
  }

  /**
   * Checks a password against a stored hash, or against a hash of nothing when there is none (unknown
   * account, or an account without a password): never valid then, and as slow as a real check.
   * `outdated`: the stored hash is scrypt, or Argon2id below the current cost, and should be replaced now.
   */
  verify(
    password: string,
    stored: string | null,
    ip: string | null = null,
  ): Promise<{ valid: boolean; outdated: boolean }> {
    return this.pool.run(() => this.check(password, stored), ip === null ? null : limitAddress(ip));
  }

  private async check(
    password: string,
    stored: string | null,
  ): Promise<{ valid: boolean; outdated: boolean }> {
    const against = stored ?? (await this.dummy);
    if (against.startsWith('scrypt$')) {
      const parsed = parseScrypt(against);
      if (!parsed) return { valid: false, outdated: false };
      const actual = await scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, parsed.key.length);
      const valid = stored !== null && timingSafeEqual(actual, parsed.key);
      return { valid, outdated: valid };
    }
    const cost = argon2Cost(against);
    if (!cost) return { valid: false, outdated: false };
    const matches = await argon2Verify(against, password).catch(() => false);
    const valid = stored !== null && matches;
    const outdated =
      valid && (cost.memoryKiB < this.cost.memoryKiB || cost.iterations < this.cost.iterations);
    return { valid, outdated };
  }
}
