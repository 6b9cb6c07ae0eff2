import { defineConfig } from 'vitest/config';

// `vitest run` at the root runs every package and app as its own project, in one process tree; the
// e2e-cluster project runs some e2e files again against redis-cache as a Redis Cluster; e2e-serial
// runs the files that must run alone, after all the others.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'e2e', 'e2e/vitest.cluster.config.ts', 'e2e/vitest.serial.config.ts'],
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
