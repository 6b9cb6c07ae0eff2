import { defineConfig } from 'vitest/config';

// Workspace packages export their TypeScript sources under the `atoll-source` condition, so tests
// (and the native local stack, via `node --conditions=atoll-source`) run without a build step.
const conditions = ['atoll-source', 'module', 'node', 'development|production'];

export default defineConfig({
  resolve: { conditions },
  ssr: { resolve: { conditions, externalConditions: ['atoll-source'] } },
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    // Two test files at a time (each has its own database, Redis servers and ports): on a 2-core
    // machine with the container images built, vitest took 1,434 s so, against 2,316-2,376 s one file
    // at a time, as many files wait on processes, timers and I/O. The files that must run alone, after
    // the others, are e2e/vitest.serial.config.ts's.
    maxWorkers: 2,
    hookTimeout: 60_000,
    globalSetup: [new URL('./packages/testkit/src/global-setup.ts', import.meta.url).pathname],
  },
});
