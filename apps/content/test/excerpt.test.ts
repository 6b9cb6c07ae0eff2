import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { excerpt } from '../src/notifications/notifications.ts';

describe('excerpt', () => {
  it('keeps a text of up to 280 units as it is, and cuts a longer one at a whole character', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', minLength: 140, maxLength: 400 }), fc.nat(3), (text, lead) => {
        // Lead with 0–3 ASCII letters so that surrogate pairs land on either side of the cut.
        const s = 'x'.repeat(lead) + text;
        fc.pre(s.isWellFormed());
        const cut = excerpt(s);
        if (s.length <= 280) {
          expect(cut).toBe(s);
          return;
        }
        expect(cut.endsWith('...')).toBe(true);
        expect(cut.length).toBeLessThanOrEqual(280);
        expect(s.startsWith(cut.slice(0, -3))).toBe(true);
        // Never half of a pair: a text PostgreSQL takes in JSON stays one it takes.
        expect(cut.isWellFormed()).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it('steps back before an emoji that straddles the cut', () => {
    const text = `${'a'.repeat(276)}\u{1F600}${'b'.repeat(20)}`;
    expect(excerpt(text)).toBe(`${'a'.repeat(276)}...`);
  });
});
