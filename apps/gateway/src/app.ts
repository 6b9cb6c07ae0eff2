import { base, fastifyOptions, redisRoles } from '@atoll/service-kit';
import Fastify, { type FastifyInstance } from 'fastify';
import type { GatewayConfig } from './config.ts';
import csrf from './plugins/csrf.ts';
import proxy from './plugins/proxy.ts';
import session from './plugins/session.ts';
import healthServices from './routes/health-services.ts';
import notificationStream from './routes/notification-stream.ts';

/** The gateway as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: GatewayConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({ service: 'gateway', logLevel: config.logLevel, requestIds: 'gateway' }),
  );
  // Infrastructure
  await app.register(base);
  await app.register(redisRoles, { service: 'gateway', urls: { session: config.redisSessionUrl } });
  // Domain
  await app.register(session, {
    keyPrefix: config.keyPrefix,
    cookieName: config.session.cookieName,
    timeouts: config.session.timeouts,
  });
  await app.register(csrf, { cookieName: config.session.cookieName, trustedOrigins: config.trustedOrigins });
  // Routes
  await app.register(healthServices, {
    upstreams: config.upstreams,
    timeoutMs: Math.min(config.upstreamTimeoutMs, 2000),
  });
  await app.register(notificationStream, {
    keyPrefix: config.keyPrefix,
    redisSessionUrl: config.redisSessionUrl,
    notifierUrl: config.upstreams.notifier,
    identitySecret: config.identitySecrets[0] as string,
    heartbeatMs: config.sseHeartbeatMs,
  });
  await app.register(proxy, {
    upstreams: config.upstreams,
    timeoutMs: config.upstreamTimeoutMs,
    identitySecret: config.identitySecrets[0] as string,
  });
  return app;
}
