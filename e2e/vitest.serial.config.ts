import { defineConfig } from 'vitest/config';
import shared from '../vitest.shared.ts';

/**
 * The e2e files that run alone, after every other file (each other file runs two at a time:
 * vitest.shared.ts `maxWorkers`):
 * - the three that fail a Sentinel primary and measure the failover, with sentinels that call a node
 *   down after 1 s without a reply: beside another file on a 2-core machine, a node starved of CPU for
 *   that second is failed over when no test asked for it;
 * - the container stack, which stops Podman's DNS server for every container on the host and closes
 *   the services' PostgreSQL connections under them: beside another file, a sign-up right after that
 *   was once answered 503 DATABASE_UNAVAILABLE.
 */
export const SERIAL = [
  'test/sentinel-failover.test.ts',
  'test/sentinel-scripts.test.ts',
  'test/compose-sentinel.test.ts',
  'test/containers.test.ts',
];

export default defineConfig({
  ...shared,
  test: {
    ...shared.test,
    name: 'e2e-serial',
    root: new URL('.', import.meta.url).pathname,
    include: SERIAL,
    maxWorkers: 1,
    // After the group every other project runs in (0).
    sequence: { groupOrder: 1 },
  },
});
