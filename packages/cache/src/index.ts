export { type CacheStats, LayeredCache, type LayeredCacheOptions } from './layered-cache.ts';
export { Lru } from './lru.ts';
