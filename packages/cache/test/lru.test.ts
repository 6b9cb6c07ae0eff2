/**
 * The bounded LRU against a model, in any order of operations: it never holds more than its bound,
 * it evicts the least recently used, and `onRemove` hears of every value that leaves it, once, so that
 * whatever is kept beside it (the cache's index of tags) can stay in step.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Lru } from '../src/lru.ts';

describe('Lru', () => {
  it('matches a model of recency, bound and removals under any sequence of operations', () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd', 'e');
    const op = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), key }),
      fc.record({ kind: fc.constant('get' as const), key }),
      fc.record({ kind: fc.constant('peek' as const), key }),
      fc.record({ kind: fc.constant('delete' as const), key }),
      fc.record({ kind: fc.constant('clear' as const) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(op, { maxLength: 60, size: 'max' }),
        (max, ops) => {
          // What onRemove says is held: every value set and not yet reported removed.
          const held = new Map<string, number>();
          const lru = new Lru<number>(max, (k, v) => {
            expect(held.get(k)).toBe(v);
            held.delete(k);
          });
          let model: Array<[string, number]> = []; // least recently used first
          let next = 0;
          for (const o of ops) {
            if (o.kind === 'set') {
              const value = next++;
              model = model.filter(([k]) => k !== o.key);
              model.push([o.key, value]);
              if (model.length > max) model.shift();
              lru.set(o.key, value);
              held.set(o.key, value);
              // lru.set has reported the value it replaced and the one it evicted: the new one is held now.
            } else if (o.kind === 'get') {
              const found = model.find(([k]) => k === o.key);
              if (found) model = [...model.filter(([k]) => k !== o.key), found];
              expect(lru.get(o.key)).toBe(found?.[1]);
            } else if (o.kind === 'peek') {
              expect(lru.peek(o.key)).toBe(model.find(([k]) => k === o.key)?.[1]);
            } else if (o.kind === 'delete') {
              model = model.filter(([k]) => k !== o.key);
              lru.delete(o.key);
            } else {
              model = [];
              lru.clear();
            }
            expect([...lru.entries()]).toEqual(model);
            expect(lru.size).toBeLessThanOrEqual(max);
            expect([...held].sort()).toEqual([...model].sort());
          }
        },
      ),
    );
  });
});
