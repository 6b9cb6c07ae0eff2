/**
 * Content's three-layer cache (`@atoll/cache`): L1 in this process, L2 on redis-cache, L3 PostgreSQL.
 * It gets a subscriber connection of its own for the invalidation bus. A stale value is served only
 * when PostgreSQL is unreachable or too slow (never for "not found" and the like).
 */
import { LayeredCache } from '@atoll/cache';
import { isDatabaseUnavailable } from '@atoll/db';
import { closeRedis, createRedisClient } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { Counter, type Registry } from '@atoll/service-kit';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

declare module 'fastify' {
  interface FastifyInstance {
    cache: LayeredCache;
  }
}

export interface CachePluginOptions {
  keyPrefix: string;
  redisCacheUrl: string;
  ttlMs: number;
  graceMs: number;
  l1MaxEntries: number;
}

/** What each `LayeredCache.stats` counter means on /metrics, by `result` label. */
const STAT_LABELS = {
  l1Hits: 'l1_hit',
  l2Hits: 'l2_hit',
  loads: 'load',
  staleServed: 'stale_served',
  tooLarge: 'too_large',
} as const;

/**
 * The cache's own counters, read when Prometheus scrapes: `content_cache_reads_total{result}` where
 * `l1_hit` and `l2_hit` are hits per layer, `load` a read from PostgreSQL (L3), `stale_served` a stale
 * value served while PostgreSQL failed, `too_large` a value kept out of Redis for its size.
 */
function exposeCacheStats(registry: Registry, cache: LayeredCache): void {
  new Counter({
    name: 'content_cache_reads_total',
    help: 'Reads of the three-layer cache by result: l1_hit, l2_hit, load (L3), stale_served, too_large',
    labelNames: ['result'] as const,
    registers: [registry],
    collect() {
      // The cache counts for itself; a scrape copies its totals (reset + inc sets a counter's value).
      this.reset();
      for (const [stat, result] of Object.entries(STAT_LABELS))
        this.inc({ result }, cache.stats[stat as keyof typeof STAT_LABELS]);
    },
  });
}

const cachePlugin: FastifyPluginAsync<CachePluginOptions> = async (app, opts) => {
  const subscriber = createRedisClient({
    url: opts.redisCacheUrl,
    role: 'cache',
    use: 'subscriber',
    name: 'content:cache-bus',
    log: app.log,
  });
  await subscriber.connect();
  const cache = new LayeredCache({
    redis: app.redis.cache!,
    subscriber,
    keys: createKeys(opts.keyPrefix),
    namespace: 'content',
    ttlMs: opts.ttlMs,
    graceMs: opts.graceMs,
    l1MaxEntries: opts.l1MaxEntries,
    staleOn: isDatabaseUnavailable,
    log: app.log,
  });
  await cache.start();
  app.decorate('cache', cache);
  exposeCacheStats(app.metrics.registry, cache);
  app.addHook('onClose', async () => closeRedis(subscriber));
};

export const contentCache = fp(cachePlugin, { name: 'content-cache', dependencies: ['@atoll/redis-roles'] });
