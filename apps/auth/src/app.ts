import { identityPlugin } from '@atoll/identity';
import { base, database, fastifyOptions, redisRoles } from '@atoll/service-kit';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AuthConfig } from './config.ts';
import { SCHEMA } from './migrations/index.ts';
import sessionRoutes from './routes/session.ts';

/** The auth service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: AuthConfig): Promise<FastifyInstance> {
  const app = Fastify(fastifyOptions({ service: 'auth', logLevel: config.logLevel, requestIds: 'internal' }));
  // Infrastructure
  await app.register(base);
  await app.register(redisRoles, { service: 'auth', urls: config.redis });
  await app.register(database, { url: config.databaseUrl, schema: SCHEMA });
  await app.register(identityPlugin, { secrets: config.identitySecrets });
  // Routes
  await app.register(sessionRoutes);
  return app;
}
