/**
 * What the gateway loads is memory it holds for its whole life (bench/README.md, "Memory"). It has no
 * database, so it must not load kysely or pg, and it proxies over undici: one copy of it, the one
 * @fastify/reply-from uses.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('loads no database client and one undici', async () => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--conditions=atoll-source', join(import.meta.dirname, 'print-loaded-packages.ts')],
    { env: { ...process.env, NODE_OPTIONS: '' } },
  );
  const loaded = JSON.parse(stdout) as string[];
  const names = loaded.map((p) => p.slice(0, p.lastIndexOf('@')));
  // The hook sees the packages (a listing without fastify would mean it saw nothing).
  expect(names).toContain('fastify');
  expect(names).toContain('@fastify/reply-from');
  expect(names).not.toContain('kysely');
  expect(names).not.toContain('pg');
  expect(loaded.filter((p) => p.startsWith('undici@'))).toHaveLength(1);
});
