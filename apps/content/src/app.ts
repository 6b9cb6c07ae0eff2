import { identityPlugin } from '@atoll/identity';
import { Producer } from '@atoll/jobs';
import { createKeys } from '@atoll/redis-keys';
import { base, database, dbOf, fastifyOptions, redisRoles } from '@atoll/service-kit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import articleRoutes from './articles/article.routes.ts';
import { ArticleService } from './articles/article.service.ts';
import { contentCache } from './cache.plugin.ts';
import commentRoutes from './comments/comment.routes.ts';
import type { ContentConfig } from './config.ts';
import type { ContentDatabase } from './db.ts';
import { SCHEMA } from './migrations/index.ts';
import { notificationRelay } from './notifications/notifications.ts';
import profileRoutes from './profiles/profile.routes.ts';
import { profileProjection } from './profiles/projection.plugin.ts';
import rankingRoutes from './rankings/ranking.routes.ts';
import { createRankings } from './rankings/rankings.ts';
import tagRoutes from './tags/tag.routes.ts';

/** The content service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: ContentConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({ service: 'content', logLevel: config.logLevel, requestIds: 'internal' }),
  ).withTypeProvider<TypeBoxTypeProvider>();
  // Infrastructure
  await app.register(base, { service: 'content', metricsToken: config.metricsToken });
  await app.register(redisRoles, { service: 'content', urls: config.redis });
  await app.register(database, { url: config.databaseUrl, schema: SCHEMA });
  await app.register(identityPlugin, { secrets: config.identitySecrets });
  if (config.cache.enabled) {
    await app.register(contentCache, {
      keyPrefix: config.keyPrefix,
      redisCacheUrl: config.redis.cache,
      ...config.cache,
    });
  }
  // Profiles of authors, kept from the user.* events (a consumer group on the user events stream); a
  // changed profile invalidates the cached articles that show it.
  await app.register(profileProjection, {
    keyPrefix: config.keyPrefix,
    redisQueueUrl: config.redis.queue,
    onProfileChanged: async (userId) => {
      if (config.cache.enabled) await app.cache.invalidate({ tags: [`profile:${userId}`] });
    },
  });
  // Domain
  const db = dbOf<ContentDatabase>(app);
  const producer = new Producer(app.redis.queue!, createKeys(config.keyPrefix));
  const notifications = notificationRelay(db, producer, app.log);
  app.addHook('onReady', async () => notifications.start());
  app.addHook('preClose', async () => notifications.stop());
  app.addHook('onClose', async () => producer.close());
  const rankings = createRankings(db, app.redis.cache!, createKeys(config.keyPrefix), app.log);
  const articles = new ArticleService(db, notifications, rankings, config.cache.enabled ? app.cache : null);
  // Routes
  await app.register(profileRoutes, { db, notifications });
  await app.register(rankingRoutes, { db, articles, rankings });
  await app.register(articleRoutes, { articles });
  await app.register(commentRoutes, { db, articles, notifications });
  await app.register(tagRoutes, { db });
  return app;
}
