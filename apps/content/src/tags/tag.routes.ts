import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import { popularTags } from '../articles/article.repository.ts';
import { TagsResponse } from '../articles/article.schemas.ts';
import type { ContentDatabase } from '../db.ts';

/** RealWorld `GET /api/tags`: the tags in use, most used first. */
const tagRoutes: FastifyPluginAsyncTypebox<{ db: Kysely<ContentDatabase> }> = async (app, { db }) => {
  app.get('/api/tags', { schema: { response: { 200: TagsResponse } } }, async () => ({
    tags: await popularTags(db),
  }));
};

export default tagRoutes;
