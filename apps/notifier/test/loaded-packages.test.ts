/**
 * What the notifier loads is memory it holds for its whole life (bench/README.md, "Memory"). Bull Board
 * and what it brings (lodash, glob, ejs, valibot) load on the first request for the board
 * (admin/admin.routes.ts), not with the app.
 */
import { join } from 'node:path';
import { loadedPackages, packageName } from '@atoll/testkit';
import { expect, it } from 'vitest';

it('loads the queue board only when it is asked for', async () => {
  const names = (await loadedPackages(join(import.meta.dirname, '../src/app.ts'))).map(packageName);
  // The hook sees the packages (a listing without fastify and bullmq would mean it saw nothing).
  expect(names).toContain('fastify');
  expect(names).toContain('bullmq');
  for (const lazy of ['@bull-board/api', '@bull-board/fastify', '@bull-board/ui', 'lodash', 'ejs'])
    expect(names).not.toContain(lazy);
});
