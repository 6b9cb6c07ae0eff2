import { BatchingSigner, IdentitySigner } from '@atoll/identity';
import { createKeys } from '@atoll/redis-keys';
import { base, Counter, fastifyOptions, redisRoles } from '@atoll/service-kit';
import Fastify, { type FastifyInstance } from 'fastify';
import { classifier } from './classify.ts';
import type { GatewayConfig } from './config.ts';
import docs from './docs/openapi.ts';
import csrf from './plugins/csrf.ts';
import door from './plugins/door.ts';
import proxy from './plugins/proxy.ts';
import session from './plugins/session.ts';
import { UpstreamPool } from './plugins/upstream-pool.ts';
import { RateCounter } from './rate-limit/counter.ts';
import rateLimits from './rate-limit/plugin.ts';
import healthServices from './routes/health-services.ts';
import notificationStream from './routes/notification-stream.ts';

/** The gateway as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: GatewayConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({
      service: 'gateway',
      logLevel: config.logLevel,
      requestIds: 'gateway',
      bodyLimit: config.bodyLimitBytes,
      trustedProxies: config.trustedProxies,
      ownAccessLog: true,
      timeouts: config.timeouts,
    }),
  );
  // Infrastructure
  await app.register(base, { service: 'gateway', metricsToken: config.metricsToken, internalOpenApi: false });
  await app.register(redisRoles, {
    service: 'gateway',
    urls: { session: config.redisSessionUrl },
    commandTimeoutMs: config.redisCommandTimeoutMs,
    // Concurrent requests' session lookups share writes to redis-session (fewer syscalls under load).
    autoPipelining: ['session'],
  });
  // At the door: what the request is (decided once, read by everything below), CORS, security headers,
  // JSON only, the access log.
  const classify = classifier({
    routeTimeouts: config.upstreamRouteTimeouts,
    defaultTimeoutMs: config.upstreamTimeoutMs,
  });
  await app.register(door, { corsOrigins: config.corsOrigins, classify });
  // Who is calling (one round trip to redis-session, which also counts the request), then the limits.
  const counter = new RateCounter({
    redis: app.redis.session!,
    keys: createKeys(config.keyPrefix),
    limits: config.rateLimits,
    onStoreError: config.rateLimits.onStoreError,
    log: app.log,
    registry: app.metrics.registry,
  });
  await app.register(session, {
    keyPrefix: config.keyPrefix,
    cookieName: config.session.cookieName,
    timeouts: config.session.timeouts,
    counter,
  });
  await app.register(csrf, { allowedOrigins: config.corsOrigins });
  await app.register(rateLimits, { counter, limits: config.rateLimits, registry: app.metrics.registry });
  // Routes. Every request to a service carries an assertion signed with the gateway's key; the
  // assertions made in one turn of the event loop share one signature (@atoll/identity, v3).
  const assertions = new Counter({
    name: 'gateway_identity_assertions_total',
    help: 'Identity assertions made for requests to the services',
    registers: [app.metrics.registry],
  });
  const signatures = new Counter({
    name: 'gateway_identity_signatures_total',
    help: 'Ed25519 signatures made for identity assertions: one per batch of at most 64 assertions',
    registers: [app.metrics.registry],
  });
  const signer = new BatchingSigner(new IdentitySigner(config.identityKey), (size) => {
    signatures.inc();
    assertions.inc(size);
  });
  // Each service's instances, shared by everything that sends it requests.
  const pools = {
    auth: new UpstreamPool(config.upstreams.auth),
    content: new UpstreamPool(config.upstreams.content),
    notifier: new UpstreamPool(config.upstreams.notifier),
  };
  await app.register(healthServices, {
    upstreams: config.upstreams,
    timeoutMs: Math.min(config.upstreamTimeoutMs, 2000),
  });
  await app.register(notificationStream, {
    keyPrefix: config.keyPrefix,
    redisSessionUrl: config.redisSessionUrl,
    notifier: pools.notifier,
    signer,
    heartbeatMs: config.sseHeartbeatMs,
    maxStreamsPerUser: config.sseMaxStreamsPerUser,
    maxStreamsPerAddress: config.sseMaxStreamsPerAddress,
    maxStreams: config.sseMaxStreams,
    maxLifetimeMs: config.sseMaxLifetimeMs,
    registry: app.metrics.registry,
  });
  await app.register(docs, {
    signer,
    pools,
    timeoutMs: Math.min(config.upstreamTimeoutMs, 2000),
  });
  await app.register(proxy, {
    pools,
    signer,
    registry: app.metrics.registry,
    serverTiming: config.serverTiming,
  });
  return app;
}
