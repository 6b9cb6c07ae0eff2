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
    hookTimeout: 60_000,
    globalSetup: [new URL('./packages/testkit/src/global-setup.ts', import.meta.url).pathname],
  },
});
