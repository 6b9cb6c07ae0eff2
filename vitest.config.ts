import { defineConfig } from 'vitest/config';

// `vitest run` at the root runs every package and app as its own project, in one process tree; the
// e2e-cluster project runs some e2e files again against redis-cache as a Redis Cluster.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'e2e', 'e2e/vitest.cluster.config.ts'],
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
