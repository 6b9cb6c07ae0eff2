import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';

/**
 * The npm packages (name@version) that importing `modulePath` loads, in a Node process of its own from
 * the TypeScript sources: what a service holds in memory for its whole life before its first request
 * (bench/README.md, "Memory").
 */
export async function loadedPackages(modulePath: string): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--conditions=atoll-source', join(import.meta.dirname, 'print-loaded-packages.ts'), modulePath],
    { env: { ...process.env, NODE_OPTIONS: '' } },
  );
  return JSON.parse(stdout) as string[];
}

/** A package's name without its version. */
export const packageName = (loaded: string) => loaded.slice(0, loaded.lastIndexOf('@'));
