/**
 * Where the public RealWorld ("Conduit") API contract is: `api/openapi.yml` of
 * https://github.com/realworld-apps/realworld (MIT). atoll does not ship a copy, so the tests that
 * judge the API by it find it at run time:
 * - `REALWORLD_OPENAPI`, if set: that file (relative to the directory the tests run from). Set but not
 *   there is an error, not a skip.
 * - otherwise `../shared/realworld/openapi.yml` beside the repository, where the project's CI puts it;
 * - otherwise nowhere: the parts of a test that need it are skipped, and `MISSING` says why.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

const SOURCE = 'api/openapi.yml from https://github.com/realworld-apps/realworld';

const BESIDE_REPOSITORY = fileURLToPath(new URL('../../../shared/realworld/openapi.yml', import.meta.url));

export type ContractLocation = { file: string; missing?: undefined } | { file?: undefined; missing: string };

/** The contract's file, or why there is none. Throws when `REALWORLD_OPENAPI` names a missing file. */
export function locateContract(
  env: NodeJS.ProcessEnv = process.env,
  besideRepository = BESIDE_REPOSITORY,
): ContractLocation {
  const named = env.REALWORLD_OPENAPI;
  if (named) {
    const file = resolve(named);
    if (!existsSync(file)) {
      throw new Error(
        `REALWORLD_OPENAPI is ${named}, but there is no file at ${file}: point it at a copy of ${SOURCE}, or unset it`,
      );
    }
    return { file };
  }
  if (existsSync(besideRepository)) return { file: besideRepository };
  return {
    missing: `the RealWorld contract is not here: set REALWORLD_OPENAPI to a copy of ${SOURCE} (or put it at ${besideRepository})`,
  };
}

const location = locateContract();

/** The contract's file, when there is one. */
export const CONTRACT_FILE = location.file;
/** Why there is no contract (for `skipIf` and the test's title), or undefined when there is one. */
export const MISSING = location.missing;

/** The contract, parsed. Only for tests that run when `CONTRACT_FILE` is set. */
export function readContract(): Record<string, any> {
  if (!CONTRACT_FILE) throw new Error(MISSING);
  return parse(readFileSync(CONTRACT_FILE, 'utf8')) as Record<string, any>;
}

/**
 * A test's title, with the reason it is skipped when the contract is missing; says so on stderr too,
 * so the run's output names what was left out.
 */
export function needsContract(title: string): string {
  if (!MISSING) return title;
  console.warn(`skipped: "${title}": ${MISSING}`);
  return `${title} (skipped: ${MISSING})`;
}
