import { defineConfig } from 'vitest/config';

// `vitest run` at the root runs every package and app as its own project, in one process tree.
export default defineConfig({
  test: {
    projects: ['packages/*', 'apps/*', 'e2e'],
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
