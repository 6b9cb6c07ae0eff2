import { describe, expect, it } from 'vitest';
import { allowedReturnTo } from '../src/google/return-to.ts';

const ORIGINS = ['https://app.example'];

describe('allowedReturnTo', () => {
  it('takes paths on this site and origins on the allow-list', () => {
    for (const path of ['/', '/settings', '/article/how-to?tab=comments#c1', '/a/b/../c', '/%2F%2Fx']) {
      expect(allowedReturnTo(path, ORIGINS), path).toBe(path);
    }
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
});
