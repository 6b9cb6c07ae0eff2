/**
 * TurnBatch: the lookups of one turn of the event loop go to `load` together, once per distinct key;
 * each caller gets its own key's value (or undefined), and a failed load fails every caller of its batch.
 */
import { describe, expect, it } from 'vitest';
import { TurnBatch } from '../src/notifications/turn-batch.ts';

describe('TurnBatch', () => {
  it('answers the lookups of one turn with one load of the distinct keys', async () => {
    const loads: string[][] = [];
    const batch = new TurnBatch(async (keys: string[]) => {
      loads.push(keys);
      return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.toUpperCase()]));
    });
    const keys = [...Array.from({ length: 30 }, (_, i) => `k${i % 20}`), 'missing'];
    const values = await Promise.all(keys.map((k) => batch.get(k)));
    expect(loads).toHaveLength(1);
    expect(loads[0]).toHaveLength(21);
    expect(values).toEqual(keys.map((k) => (k === 'missing' ? undefined : k.toUpperCase())));
    // A later turn is a batch of its own.
    expect(await batch.get('k1')).toBe('K1');
    expect(loads).toHaveLength(2);
  });

  it('fails every lookup of a batch whose load failed, and the next batch loads again', async () => {
    let fail = true;
    const batch = new TurnBatch(async (keys: string[]) => {
      if (fail) throw new Error('database unavailable');
      return new Map(keys.map((k) => [k, 1]));
    });
    const results = await Promise.allSettled(['a', 'b', 'a'].map((k) => batch.get(k)));
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    fail = false;
    expect(await batch.get('a')).toBe(1);
  });
});
