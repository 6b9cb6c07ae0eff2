import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

export type HealthCheck = () => Promise<boolean>;

declare module 'fastify' {
  interface FastifyInstance {
    health: {
      /** Registers a readiness check, e.g. `health.add('redis-session', () => pingRedis(client))`. */
      add(name: string, check: HealthCheck): void;
      /**
       * Starts draining (shutdown has begun): from now on `/health/ready` answers 503 `draining`, so load
       * balancers and orchestrators stop sending, and every response closes its connection (base.ts).
       */
      drain(): void;
      /** True once `drain()` was called or the app began closing. */
      readonly draining: boolean;
    };
  }
}

/**
 * `GET /health/live`: the process runs (never touches a dependency; logged only at warn, probes are many).
 * `GET /health/ready`: every registered dependency answers; 503 naming each one that does not. Checks run
 * in parallel and each is bounded by its own timeout, so readiness never hangs. Once shutdown has begun
 * (`health.drain()`, or the app closing) it answers 503 `draining` at once, without asking anything.
 */
const healthPlugin: FastifyPluginAsync = async (app) => {
  const checks = new Map<string, HealthCheck>();
  let draining = false;
  app.decorate('health', {
    add: (name: string, check: HealthCheck) => void checks.set(name, check),
    drain: () => {
      draining = true;
    },
    get draining() {
      return draining;
    },
  });
  app.addHook('preClose', async () => {
    draining = true;
  });

  app.get('/health/live', { logLevel: 'warn' }, async () => ({ status: 'ok' }));
  app.get('/health/ready', async (_request, reply) => {
    if (draining) return reply.code(503).send({ status: 'draining' });
    const names = [...checks.keys()];
    const results = await Promise.all(
      names.map(
        (n) =>
          checks
            .get(n)?.()
            .catch(() => false) ?? false,
      ),
    );
    const status: Record<string, 'up' | 'down'> = {};
    names.forEach((n, i) => {
      status[n] = results[i] ? 'up' : 'down';
    });
    const down = names.filter((n) => status[n] === 'down');
    if (down.length > 0) {
      return reply.code(503).send({ status: 'unavailable', down, checks: status });
    }
    return { status: 'ready', checks: status };
  });
};

export default fp(healthPlugin, { name: '@atoll/health', fastify: '5.x' });
