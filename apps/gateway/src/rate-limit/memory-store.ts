/**
 * The in-memory limiter the gateway falls back to while redis-session cannot count: @fastify/rate-limit's
 * own LocalStore (fixed windows in a bounded LRU), so the limits keep their meaning, per gateway process.
 * It is loaded by path because the package exports only its plugin.
 */
import { createRequire } from 'node:module';

export interface Count {
  current: number;
  ttl: number;
}

export interface MemoryStore {
  incr(key: string, cb: (err: Error | null, result: Count) => void, windowMs: number, max: number): void;
}

const require = createRequire(import.meta.url);
const LocalStore = require('@fastify/rate-limit/store/LocalStore.js') as new (
  continueExceeding: boolean,
  exponentialBackoff: boolean,
  cacheSize: number,
) => MemoryStore;

/** Up to `entries` callers are tracked; beyond that the least recently seen start a fresh window. */
export function memoryStore(entries = 50_000): MemoryStore {
  return new LocalStore(false, false, entries);
}
