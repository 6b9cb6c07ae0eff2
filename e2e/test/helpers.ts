import { randomBytes } from 'node:crypto';
import { connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import {
  ownedTempDir,
  removeOwnedDir,
  type Stack,
  startStack,
  type TestDatabase,
  testDatabase,
} from '@atoll/testkit';

export const IDENTITY_SECRET = randomBytes(32).toString('hex');

/**
 * Every test client calls from 127.0.0.1, so the gateway's per-address limits would make unrelated tests
 * depend on how many requests came before; the limits have their own tests (rate-limit tests).
 */
export const GENEROUS_LIMITS = {
  RATE_LIMIT_ANONYMOUS_MAX: '100000',
  RATE_LIMIT_USER_MAX: '100000',
  RATE_LIMIT_ADDRESS_MAX: '100000',
  RATE_LIMIT_AUTH_MAX: '100000',
  RATE_LIMIT_MAIL_MAX: '100000',
  // The same for auth's hashing pool: one address may fill it (password-limits.test.ts tests the pool).
  PASSWORD_HASH_PER_CLIENT: '1000',
  PASSWORD_HASH_QUEUE: '1000',
  // And auth's sign-ups per address (password-limits.test.ts tests the limit).
  REGISTRATION_MAX_PER_ADDRESS: '100000',
};

/**
 * Test stacks register many accounts on small machines: new password hashes at Argon2id m = 19 MiB,
 * t = 2 (OWASP's minimum, the lowest cost auth accepts). Tests of the cost itself set their own.
 */
export const TEST_PASSWORD_COST = { PASSWORD_ARGON2_MEMORY_KIB: '19456', PASSWORD_ARGON2_ITERATIONS: '2' };

/** The whole stack, as the local stack command runs it, on a fresh database and fresh Redis folders. */
export async function startTestStack(
  label: string,
  env: Record<string, string> = {},
): Promise<{ stack: Stack; dispose: () => Promise<void> }> {
  const database: TestDatabase = await testDatabase(label);
  const dataDir = await ownedTempDir(`stack-${label}`);
  const stack = await startStack({
    dataDir,
    databaseUrl: database.url,
    identitySecret: IDENTITY_SECRET,
    keyPrefix: `t${randomBytes(4).toString('hex')}`,
    retainLogs: true,
    env: { ...GENEROUS_LIMITS, ...TEST_PASSWORD_COST, ...env },
  });
  return {
    stack,
    dispose: async () => {
      await stack.stop();
      await database.drop();
      removeOwnedDir(dataDir);
    },
  };
}

/** Polls until `check` is true or the time is up; returns the last result. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const silent = { info() {}, warn() {}, error() {} };

/** A client of one of the stack's Redis servers, for a test to look at what the services wrote. */
export function redisOf(
  stack: Stack,
  role: 'cache' | 'session' | 'queue',
  use: 'producer' | 'worker' = 'producer',
): Promise<RoleCheckedRedis> {
  return connectRedis({ url: stack.redis[role].url, role, use, name: `test:${role}`, log: silent });
}
