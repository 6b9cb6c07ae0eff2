/** What the test kit's Sentinel groups and clusters share: waiting for a state, and one question to a node. */
import type { Redis } from 'ioredis';

/** Polls `check` every 100 ms until it is true (a throw counts as false); throws naming `what` after `timeoutMs`. */
export async function waitUntil(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A client that tries once, answers within a second, and is gone after `ask`. */
export const ONE_SHOT = {
  lazyConnect: true,
  retryStrategy: () => null,
  enableReadyCheck: false,
  maxRetriesPerRequest: 0,
  connectTimeout: 1000,
  commandTimeout: 1000,
} as const;

export async function oneShot<T>(client: Redis, ask: (c: Redis) => Promise<T>): Promise<T> {
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await ask(client);
  } finally {
    client.disconnect();
  }
}
