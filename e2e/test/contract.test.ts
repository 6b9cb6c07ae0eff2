/** Where the tests find the public RealWorld contract (contract.ts), without starting a stack. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { locateContract } from './contract.ts';

describe('locateContract', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atoll-contract-'));
  const copy = join(dir, 'openapi.yml');
  writeFileSync(copy, 'openapi: 3.1.0\n');
  const nowhere = join(dir, 'shared', 'realworld', 'openapi.yml');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('takes the file REALWORLD_OPENAPI names, before the one beside the repository', () => {
    expect(locateContract({ REALWORLD_OPENAPI: copy }, nowhere)).toEqual({ file: copy });
  });

  it('refuses a REALWORLD_OPENAPI that names no file, saying which', () => {
    const missing = join(dir, 'gone.yml');
    expect(() => locateContract({ REALWORLD_OPENAPI: missing }, copy)).toThrow(
      `REALWORLD_OPENAPI is ${missing}, but there is no file at ${missing}`,
    );
  });

  it('falls back to the file beside the repository', () => {
    expect(locateContract({}, copy)).toEqual({ file: copy });
    expect(locateContract({ REALWORLD_OPENAPI: '' }, copy)).toEqual({ file: copy });
  });

  it('says why and where to get it when there is none', () => {
    const found = locateContract({}, nowhere);
    expect(found.file).toBeUndefined();
    expect(found.missing).toContain('set REALWORLD_OPENAPI to a copy of api/openapi.yml');
    expect(found.missing).toContain('https://github.com/realworld-apps/realworld');
  });
});
