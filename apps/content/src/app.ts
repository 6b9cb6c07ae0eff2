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
import { CommentService } from './comments/comment.service.ts';
import type { ContentConfig } from './config.ts';
import type { ContentDatabase } from './db.ts';
import { SCHEMA } from './migrations/index.ts';
import { notificationRelay } from './notifications/notifications.ts';
import { FollowService } from './profiles/follow.service.ts';
import { ProfileDirectory } from './profiles/profile.directory.ts';
import profileRoutes from './profiles/profile.routes.ts';
import { profileProjection } from './profiles/projection.plugin.ts';
import rankingRoutes from './rankings/ranking.routes.ts';
import { createRankings } from './rankings/rankings.ts';
import { rankingRecompute } from './rankings/recompute.plugin.ts';
import { Relations } from './relations/relations.ts';
import tagRoutes from './tags/tag.routes.ts';
import { AfterCommit } from './writes/after-commit.ts';

/** The content service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: ContentConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({
      service: 'content',
      logLevel: config.logLevel,
      requestIds: 'internal',
      timeouts: config.timeouts,
    }),
  ).withTypeProvider<TypeBoxTypeProvider>();
  // Infrastructure
  await app.register(base, { service: 'content', metricsToken: config.metricsToken });
  // The cache client is shared by every request: a reader's two flag lookups, and concurrent readers'
  // cache reads, go out in shared writes (auto-pipelining). The queue client stays without it (BullMQ).
  await app.register(redisRoles, { service: 'content', urls: config.redis, autoPipelining: ['cache'] });
  await app.register(database, {
    url: config.databaseUrl,
    schema: SCHEMA,
    serverTiming: config.serverTiming,
  });
  await app.register(identityPlugin, { audience: 'content', publicKeys: config.identityPublicKeys });
  if (config.cache.enabled) {
    await app.register(contentCache, {
      keyPrefix: config.keyPrefix,
      redisCacheUrl: config.redis.cache,
      ...config.cache,
    });
  }
  // Domain
  const db = dbOf<ContentDatabase>(app);
  const producer = new Producer(app.redis.queue!, createKeys(config.keyPrefix));
  const notifications = notificationRelay(db, producer, app.log);
  app.addHook('onReady', async () => notifications.start());
  app.addHook('preClose', async () => notifications.stop());
  app.addHook('onClose', async () => producer.close());
  const keys = createKeys(config.keyPrefix);
  const rankings = createRankings(db, app.redis.cache!, keys, app.log);
  await app.register(rankingRecompute, {
    keyPrefix: config.keyPrefix,
    redisQueueUrl: config.redis.queue,
    rankings,
    everyMs: config.rankingsRecomputeMs,
  });
  const cache = config.cache.enabled ? app.cache : null;
  const relations = new Relations({ db, redis: cache ? app.redis.cache! : null, keys, log: app.log });
  // What every write does after its commit: invalidation, relation keys, rankings, the outbox relay.
  const afterCommit = new AfterCommit({ relations, notifications, rankings, cache });
  // Profiles of authors, kept from the user.* events (a consumer group on the user events stream); a
  // changed profile invalidates what the cache shows of it.
  await app.register(profileProjection, {
    keyPrefix: config.keyPrefix,
    redisQueueUrl: config.redis.queue,
    onProfileEvent: (userId, username, changed) => afterCommit.profileEvent(userId, username, changed),
  });
  const profiles = new ProfileDirectory({
    db,
    cache,
    authUrl: config.authUrl,
    authToken: config.authInternalToken,
    log: app.log,
  });
  const articles = new ArticleService({ db, relations, afterCommit, rankings, cache });
  const comments = new CommentService({ db, articles, relations, afterCommit, cache });
  const follows = new FollowService({ db, afterCommit });
  // Routes
  await app.register(profileRoutes, { profiles, relations, articles, follows });
  await app.register(rankingRoutes, { db, articles, rankings, relations });
  await app.register(articleRoutes, { articles });
  await app.register(commentRoutes, { comments });
  await app.register(tagRoutes, { db, cache });
  return app;
}
