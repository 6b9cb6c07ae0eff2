import { defineConfig } from 'vitest/config';
import shared from '../vitest.shared.ts';

/**
 * The e2e files whose flows touch every use of Redis, run again with redis-cache, redis-session and
 * redis-queue each a Redis Cluster (ATOLL_TEST_REDIS=cluster: helpers.ts `CLUSTER_ROLES`): the RealWorld
 * clients, notifications (jobs and the live stream), sessions ending streams, rankings (locks), the
 * content cache and the edge limits. Any CROSSSLOT error in a service log fails the file (helpers.ts
 * `crossSlotErrors`). redis-cluster.test.ts covers a primary failure and several instances.
 */
export default defineConfig({
  ...shared,
  test: {
    ...shared.test,
    name: 'e2e-cluster',
    root: new URL('.', import.meta.url).pathname,
    // In place of the shared include (mergeConfig would add to it, not replace it).
    include: [
      'test/realworld-clients.test.ts',
      'test/notification-jobs.test.ts',
      'test/sse-session.test.ts',
      'test/rankings.test.ts',
      'test/content-cache.test.ts',
      'test/edge-limits.test.ts',
    ],
    env: { ATOLL_TEST_REDIS: 'cluster' },
  },
});
