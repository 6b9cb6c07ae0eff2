/**
 * The password policy (ASVS 5.0 V6.2): length, the common-password list, context-specific words, and no
 * composition rules.
 */
import { describe, expect, it } from 'vitest';
import { CONTEXT_WORDS, PasswordPolicy } from '../src/users/password-policy.ts';

const strict = new PasswordPolicy({ denyCommon: true });
const local = new PasswordPolicy({ denyCommon: false });
const ada = { username: 'ada_lovelace', email: 'ada.lovelace@example.com' };

describe('password policy', () => {
  it('asks for 8 characters and nothing about their kinds', () => {
    expect(strict.problem('', ada)).toBe("can't be blank");
    expect(strict.problem('short', ada)).toBe('is too short (minimum is 8 characters)');
    for (const fine of ['correct horse battery', 'zzzzzzzzzzzz1', 'ÅÄÖåäö€¥¢ and more', 'x'.repeat(256)])
      expect(strict.problem(fine, ada), fine).toBeNull();
  });

  it('refuses the most common passwords whatever their case, unless told not to', () => {
    for (const common of ['password', 'password123', 'Password123', 'qwertyuiop', 'iloveyou1']) {
      expect(strict.problem(common, ada), common).toBe('is too common, choose a less guessable one');
      expect(local.problem(common, ada), common).toBeNull();
    }
  });

  it("refuses the site's names and the account's own words, always", () => {
    for (const word of CONTEXT_WORDS)
      expect(local.problem(`my ${word} 2026!`, ada)).toBe(
        'must not contain your username, your email or the name of this site',
      );
    expect(local.problem('ADA_LOVELACE rocks', ada)).not.toBeNull();
    expect(local.problem('lovelace forever', ada)).not.toBeNull();
    // Short parts of the address (`ada`, `com`) are too common to refuse.
    expect(local.problem('ada likes com', ada)).toBeNull();
  });
});
