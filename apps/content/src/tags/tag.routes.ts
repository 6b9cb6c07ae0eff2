import type { LayeredCache } from '@atoll/cache';
import { cacheIds, cacheTags } from '@atoll/redis-keys';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import { popularTags } from '../articles/article.repository.ts';
import { TagsResponse } from '../articles/article.schemas.ts';
import type { ContentDatabase } from '../db.ts';

/**
 * RealWorld `GET /api/tags`: the tags in use, most used first. Cached under the tag `tags`, which
 * every create, delete and tag change invalidates.
 */
const tagRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<ContentDatabase>;
  cache: LayeredCache | null;
}> = async (app, { db, cache }) => {
  const load = () => popularTags(db);
  app.get('/api/tags', { schema: { response: { 200: TagsResponse } } }, async () => ({
    tags: cache ? await cache.get(cacheIds.popularTags, load, [cacheTags.tags]) : await load(),
  }));
};

export default tagRoutes;
