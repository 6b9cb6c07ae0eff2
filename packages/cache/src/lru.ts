/**
 * A bounded in-process LRU map: the oldest-used entry goes when a new one would exceed `max`.
 * `onRemove` hears of every value that leaves it (evicted, replaced, deleted, cleared).
 */
export class Lru<V> {
  private readonly map = new Map<string, V>();
  private readonly max: number;
  private readonly onRemove: ((key: string, value: V) => void) | undefined;

  constructor(max: number, onRemove?: (key: string, value: V) => void) {
    this.max = max;
    this.onRemove = onRemove;
  }

  get(key: string): V | undefined {
    const value = this.map.get(key);
    if (value === undefined) return undefined;
    // Map keeps insertion order: re-inserting marks it most recently used.
    this.map.delete(key);
    this.map.set(key, value);
    return value;
  }

  /** The value without marking it used. */
  peek(key: string): V | undefined {
    return this.map.get(key);
  }

  set(key: string, value: V): void {
    this.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.max) this.delete(this.map.keys().next().value as string);
  }

  delete(key: string): void {
    const value = this.map.get(key);
    if (value === undefined) return;
    this.map.delete(key);
    this.onRemove?.(key, value);
  }

  clear(): void {
    const all = [...this.map];
    this.map.clear();
    if (this.onRemove) for (const [key, value] of all) this.onRemove(key, value);
  }

  entries(): IterableIterator<[string, V]> {
    return this.map.entries();
  }

  get size(): number {
    return this.map.size;
  }
}
