import { identityPlugin } from '@atoll/identity';
import { retentionBounds } from '@atoll/jobs';
import { createKeys } from '@atoll/redis-keys';
import { base, database, dbOf, fastifyOptions, keyAudit, redisRoles } from '@atoll/service-kit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance } from 'fastify';
import adminRoutes from './admin/admin.routes.ts';
import type { NotifierConfig } from './config.ts';
import type { NotifierDatabase } from './db.ts';
import { SCHEMA } from './migrations/index.ts';
import notificationRoutes from './notifications/notification.routes.ts';
import preferenceRoutes from './preferences/preferences.routes.ts';
import { exposeQueueCounts } from './queue-metrics.ts';
import { workers } from './workers.plugin.ts';

/** The notifier service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: NotifierConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({
      service: 'notifier',
      logLevel: config.logLevel,
      requestIds: 'internal',
      timeouts: config.timeouts,
    }),
  ).withTypeProvider<TypeBoxTypeProvider>();
  // Infrastructure
  await app.register(base, { service: 'notifier', metricsToken: config.metricsToken });
  // The fan-out's live events of one turn (the jobs of a written group) go to redis-session in one write.
  await app.register(redisRoles, { service: 'notifier', urls: config.redis, autoPipelining: ['session'] });
  // A pool large enough for every job that may hold a connection while its email is sent (mailer.ts).
  await app.register(database, {
    url: config.databaseUrl,
    schema: SCHEMA,
    poolSize: config.workers.concurrency + config.securityEmail.concurrency + 10,
    serverTiming: config.serverTiming,
  });
  await app.register(identityPlugin, { audience: 'notifier', publicKeys: config.identityPublicKeys });
  // Domain: the workers, schedulers and the recipients consumer
  await app.register(workers, { config });
  exposeQueueCounts(app.metrics.registry, app.queues);
  // The key-space audit in /metrics, on the notifier: the background service, off the request path.
  // BullMQ's completed and failed sets and events streams are bounded by the catalog's retention.
  if (config.keyAudit)
    await app.register(keyAudit, {
      prefix: config.keyPrefix,
      ...config.keyAudit,
      lengthBounds: retentionBounds(createKeys(config.keyPrefix)),
    });
  // Routes
  const db = dbOf<NotifierDatabase>(app);
  await app.register(notificationRoutes, { db });
  await app.register(preferenceRoutes, { db });
  await app.register(adminRoutes, { queues: app.queues });
  return app;
}
