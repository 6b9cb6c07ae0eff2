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
};

/**
 * Test stacks register many accounts on small machines: new password hashes at scrypt N = 2^15 (32 MiB,
 * a quarter of the default's time), the lowest cost auth accepts. Tests of the cost itself set their own.
 */
export const TEST_PASSWORD_COST = { PASSWORD_SCRYPT_LOG2_N: '15' };

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
      // Every command a service was refused by its Redis ACL user is a permission missing from the key
      // map (@atoll/redis-keys): a test that refuses on purpose clears the log itself.
      const refused = await aclRefusals(stack);
      await stack.stop();
      await database.drop();
      removeOwnedDir(dataDir);
      if (refused.length > 0) throw new Error(`Redis refused the services: ${refused.join('; ')}`);
    },
  };
}

/** What the stack's Redis servers refused a service user (ACL LOG), as `role user: command object`. */
export async function aclRefusals(stack: Stack): Promise<string[]> {
  const refused: string[] = [];
  for (const role of ['cache', 'session', 'queue'] as const) {
    if (!stack.redis[role].running) continue;
    const admin = await redisOf(stack, role).catch(() => null);
    if (!admin) continue;
    try {
      const entries = (await admin.call('ACL', 'LOG', '128')) as unknown[][];
      for (const entry of entries) {
        const fields = new Map<string, unknown>();
        for (let i = 0; i + 1 < entry.length; i += 2) fields.set(String(entry[i]), entry[i + 1]);
        refused.push(
          `${role} ${fields.get('username')}: ${fields.get('reason')} ${fields.get('object')} (${fields.get('context')})`,
        );
      }
    } finally {
      admin.disconnect();
    }
  }
  return refused;
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
