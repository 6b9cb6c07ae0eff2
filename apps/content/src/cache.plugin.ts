/**
 * Content's three-layer cache (`@atoll/cache`): L1 in this process, L2 on redis-cache, L3 PostgreSQL.
 * It gets a subscriber connection of its own for the invalidation bus. A stale value is served only
 * when PostgreSQL is unreachable or too slow (never for "not found" and the like).
 */
import { LayeredCache } from '@atoll/cache';
import { isDatabaseUnavailable } from '@atoll/db';
import { closeRedis, createRedisClient } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
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
  app.addHook('onClose', async () => closeRedis(subscriber));
};

export const contentCache = fp(cachePlugin, { name: 'content-cache', dependencies: ['@atoll/redis-roles'] });
