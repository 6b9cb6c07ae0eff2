/**
 * What a new password must be (OWASP ASVS 5.0, V6.2), wherever one is set: sign-up, a change, a reset.
 * - At least 8 characters, at most 256, any characters at all: no composition rules, and the password
 *   is hashed exactly as sent (no trimming, no case folding, no truncation).
 * - Not one of the 50,000 most common passwords of 8 characters or more (Mozilla's
 *   `fxa-common-password-list`, from a corpus of 10 million leaked passwords), whatever its case.
 *   `PASSWORD_DENY_COMMON` turns this off; the local stack does, because the public RealWorld
 *   conformance suites sign their users up with `password` and `password123`.
 * - Not built on a context-specific word: the site's own names and the account's username and email
 *   (`CONTEXT_WORDS`, and each of the account's words of 4 characters or more).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const common = require('fxa-common-password-list') as { test(password: string): boolean };

export const MIN_PASSWORD = 8;

/** The words of this site that make a guessable password (ASVS 6.1.2). */
export const CONTEXT_WORDS = ['atoll', 'conduit', 'realworld'] as const;

export interface PasswordContext {
  username?: string | undefined;
  email?: string | undefined;
}

/** The account's own words: its username, and the parts of its email address, of 4 characters or more. */
function accountWords(context: PasswordContext): string[] {
  const words = [context.username ?? '', ...(context.email ?? '').split(/[@.+_-]/)];
  return words.map((w) => w.trim().toLowerCase()).filter((w) => w.length >= 4);
}

export class PasswordPolicy {
  private readonly denyCommon: boolean;

  constructor(opts: { denyCommon: boolean }) {
    this.denyCommon = opts.denyCommon;
  }

  /** The RealWorld-style message for what is wrong with a new password, or null when it will do. */
  problem(password: string, context: PasswordContext): string | null {
    if (password === '') return "can't be blank";
    if (password.length < MIN_PASSWORD) return `is too short (minimum is ${MIN_PASSWORD} characters)`;
    if (this.denyCommon && (common.test(password) || common.test(password.toLowerCase())))
      return 'is too common, choose a less guessable one';
    const lowered = password.toLowerCase();
    if ([...CONTEXT_WORDS, ...accountWords(context)].some((word) => lowered.includes(word)))
      return 'must not contain your username, your email or the name of this site';
    return null;
  }
}
