import { identityPlugin } from '@atoll/identity';
import { base, database, fastifyOptions, redisRoles } from '@atoll/service-kit';
import Fastify, { type FastifyInstance } from 'fastify';
import type { NotifierConfig } from './config.ts';
import { SCHEMA } from './migrations/index.ts';

/** The notifier service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: NotifierConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({ service: 'notifier', logLevel: config.logLevel, requestIds: 'internal' }),
  );
  // Infrastructure
  await app.register(base, { service: 'notifier', metricsToken: config.metricsToken });
  await app.register(redisRoles, { service: 'notifier', urls: config.redis });
  await app.register(database, { url: config.databaseUrl, schema: SCHEMA });
  await app.register(identityPlugin, { secrets: config.identitySecrets });
  return app;
}
