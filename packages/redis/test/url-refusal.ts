import { expect } from 'vitest';
import { parseRedisUrl, RedisUrlError } from '../src/index.ts';

/**
 * Expects `url` (whose password contains `secret`) to be refused with a RedisUrlError of one line that
 * names `problem` and not the password.
 */
export function expectUrlRefused(url: string, problem: string): void {
  const err = (() => {
    try {
      parseRedisUrl(url);
    } catch (e) {
      return e as Error;
    }
  })();
  expect(err).toBeInstanceOf(RedisUrlError);
  expect(err?.message).toContain(problem);
  expect(err?.message).not.toContain('secret');
  expect(err?.message).not.toContain('\n');
}
