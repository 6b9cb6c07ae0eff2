/**
 * What the gateway loads is memory it holds for its whole life (bench/README.md, "Memory"). It has no
 * database, so it must not load kysely or pg, and it proxies over undici: one copy of it, the one
 * @fastify/reply-from uses. Its API reference (Scalar) loads on the first request for it.
 */
import { join } from 'node:path';
import { loadedPackages, packageName } from '@atoll/testkit';
import { expect, it } from 'vitest';

it('loads no database client, one undici and no API reference page', async () => {
  const loaded = await loadedPackages(join(import.meta.dirname, '../src/app.ts'));
  const names = loaded.map(packageName);
  // The hook sees the packages (a listing without fastify would mean it saw nothing).
  expect(names).toContain('fastify');
  expect(names).toContain('@fastify/reply-from');
  expect(names).not.toContain('kysely');
  expect(names).not.toContain('pg');
  expect(names).not.toContain('@scalar/fastify-api-reference');
  expect(loaded.filter((p) => p.startsWith('undici@'))).toHaveLength(1);
});
