import { validateHeaderValue } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { allowedReturnTo } from '../src/google/return-to.ts';

const ORIGINS = ['https://app.example'];

describe('allowedReturnTo', () => {
  it('takes paths on this site and origins on the allow-list', () => {
    for (const path of ['/', '/settings', '/article/how-to?tab=comments#c1', '/%2F%2Fx', '/%E6%97%A5']) {
      expect(allowedReturnTo(path, ORIGINS), path).toBe(path);
    }
    // As the browser will read it: dot segments resolved.
    expect(allowedReturnTo('/a/b/../c', ORIGINS)).toBe('/a/c');
    expect(allowedReturnTo(undefined, ORIGINS)).toBe('/');
    expect(allowedReturnTo('https://app.example/x', ORIGINS)).toBe('https://app.example/x');
  });

  it('refuses every known way to leave the site', () => {
    const bypasses = [
      '//evil.example',
      '///evil.example',
      '/\\evil.example',
      '/\\/evil.example',
      '\\\\evil.example',
      '/\t/evil.example',
      '/\n/evil.example',
      '/\r/evil.example',
      '/\r\n/evil.example',
      '/ /evil.example',
      ' //evil.example',
      '/\u0000/evil.example',
      '/\u000b/evil.example',
      '/\u000c/evil.example',
      '/\u007f/evil.example',
      '/\u00a0/evil.example',
      '/\u2028/evil.example',
      decodeURIComponent('/%09/evil.example'),
      decodeURIComponent('/%5Cevil.example'),
      '/.//evil.example',
      '/./\\evil.example',
      '/a/..//evil.example',
      'https:evil.example',
      'https:/evil.example',
      'https://evil.example/',
      'https://app.example.evil.example/',
      'javascript:alert(1)',
      'data:text/html,x',
      'evil.example',
    ];
    for (const target of bypasses)
      expect(allowedReturnTo(target, ORIGINS), JSON.stringify(target)).toBeNull();
  });

  it('percent-encodes what a Location header cannot carry as it is (UTF-8), in path, query and fragment', () => {
    expect(allowedReturnTo('/日本', ORIGINS)).toBe('/%E6%97%A5%E6%9C%AC');
    expect(allowedReturnTo('/a?q=日本#é', ORIGINS)).toBe('/a?q=%E6%97%A5%E6%9C%AC#%C3%A9');
    expect(allowedReturnTo('/\ud800', ORIGINS)).toBe('/%EF%BF%BD');
    expect(allowedReturnTo('https://app.example/日本', ORIGINS)).toBe(
      'https://app.example/%E6%97%A5%E6%9C%AC',
    );
  });

  describe('any string at all (property-based)', () => {
    const anything = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `/${s}`),
      fc.string({ unit: 'grapheme-composite', maxLength: 40 }).map((s) => `/${s}`),
      fc.string({ maxLength: 40 }).map((s) => `https://app.example/${s}`),
      fc.webUrl().map((url) => `${url}/日本`),
    );

    it('never throws; what it takes is a valid Location header value that stays on this site or an allowed origin', () => {
      fc.assert(
        fc.property(anything, (input) => {
          const out = allowedReturnTo(input, ORIGINS);
          if (out === null) return;
          expect(() => validateHeaderValue('location', out)).not.toThrow();
          expect(out).toMatch(/^[\x21-\x7e]+$/);
          const resolved = new URL(out, 'http://x.invalid');
          if (out.startsWith('/')) {
            expect(out.startsWith('//')).toBe(false);
            expect(resolved.origin).toBe('http://x.invalid');
            expect(resolved.pathname.startsWith('//')).toBe(false);
          } else {
            expect(ORIGINS).toContain(resolved.origin);
          }
          // Taken again, it is taken as it is.
          expect(allowedReturnTo(out, ORIGINS)).toBe(out);
        }),
        { numRuns: 5000 },
      );
    });
  });
});
