import { describe, expect, it } from 'vitest';
import { normalUsername, validUsername } from '../src/users/username.ts';

describe('validUsername', () => {
  it('takes names in one script, with digits and _ - . anywhere', () => {
    for (const name of [
      'ada',
      'Ada_Lovelace-1815',
      'j.doe',
      '.ada',
      'ada.',
      'José',
      'Jose\u0301', // decomposed: checked (and stored) as NFC
      'Ελένη',
      'Дмитрий',
      '山田たろう',
      '김철수',
      'ada_東京',
    ]) {
      expect(validUsername(name), name).toBe(true);
    }
    expect(normalUsername(' Jose\u0301 ')).toBe('José');
  });

  it('refuses invisible characters, bidi controls, dot-only names, `..` and mixed scripts', () => {
    for (const name of [
      'ad\u200ba', // zero-width space
      'ad\u200ca', // zero-width non-joiner
      'ad\u200da', // zero-width joiner
      'ad\ufeffa', // zero-width no-break space
      'ad\u00ada', // soft hyphen
      'ad\u034fa', // combining grapheme joiner
      'ada\ufe0f', // variation selector
      'ada\u2060', // word joiner
      'ada\u202e', // right-to-left override
      'ada\u2066', // left-to-right isolate
      'ada\u061c', // Arabic letter mark
      'ada\u180e', // Mongolian vowel separator
      '.',
      '..',
      '...',
      'a..b',
      '..ada',
      'p\u0430ypal', // Cyrillic а among Latin
      'ad\u03b1', // Greek α among Latin
      '\u0410d\u0430', // Cyrillic with Latin d
      'Ελένη\u0430',
      'has/slash',
      'has space',
      'a\tb',
    ]) {
      expect(validUsername(name), JSON.stringify(name)).toBe(false);
    }
  });
});
