/**
 * Lookups asked for in one turn of the event loop answered by one query: the fan-out's jobs run side by
 * side (the worker's concurrency), and each needs the same kind of row, so one `WHERE id = ANY(…)` for all
 * of them replaces one query each. Alone, a lookup waits only for the end of its own turn.
 */
export class TurnBatch<K, V> {
  private readonly load: (keys: K[]) => Promise<Map<K, V>>;
  private pending = new Map<
    K,
    Array<{ resolve: (v: V | undefined) => void; reject: (err: unknown) => void }>
  >();

  /** `load` returns the value of each key it found; a key it leaves out is `undefined`. */
  constructor(load: (keys: K[]) => Promise<Map<K, V>>) {
    this.load = load;
  }

  get(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) setImmediate(() => void this.run());
      const waiting = this.pending.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.pending.set(key, [{ resolve, reject }]);
    });
  }

  private async run(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    try {
      const found = await this.load([...batch.keys()]);
      for (const [key, waiters] of batch) for (const w of waiters) w.resolve(found.get(key));
    } catch (err) {
      for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
    }
  }
}
