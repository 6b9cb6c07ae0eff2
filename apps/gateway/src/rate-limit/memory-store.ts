/**
 * The in-memory limiter the gateway falls back to while redis-session cannot count: fixed windows, as
 * the Redis script counts them (count.lua.ts), so the limits keep their meaning, per gateway process.
 * Bounded: up to `entries` counters are kept, and beyond that the least recently counted one is dropped
 * (its caller starts a fresh window), so a flood of addresses cannot grow the process.
 */

/** A counter after one request: the count in its window and the milliseconds left of the window. */
export interface Count {
  current: number;
  ttl: number;
}

export class MemoryStore {
  /** Counters in the order they were last counted (a Map keeps insertion order): the first is the oldest. */
  private readonly windows = new Map<string, { current: number; startMs: number }>();

  private readonly entries: number;

  /** Up to `entries` counters are kept. */
  constructor(entries = 50_000) {
    this.entries = entries;
  }

  incr(key: string, windowMs: number, nowMs = Date.now()): Count {
    let window = this.windows.get(key);
    // Taken out and set again: now the most recently counted.
    if (window !== undefined) this.windows.delete(key);
    if (window === undefined || window.startMs + windowMs <= nowMs) window = { current: 0, startMs: nowMs };
    window.current += 1;
    this.windows.set(key, window);
    if (this.windows.size > this.entries) {
      const oldest = this.windows.keys().next().value as string;
      this.windows.delete(oldest);
    }
    return { current: window.current, ttl: window.startMs + windowMs - nowMs };
  }
}
