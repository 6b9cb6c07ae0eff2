/**
 * Infrastructure plugins: the Redis roles and the PostgreSQL schema a service uses. Each connects when
 * the app boots (refusing to boot on a misconfigured Redis role), registers its readiness check, and
 * closes its clients in `onClose`.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import type { Kysely } from '@atoll/db';
import { closeRedis, connectRedis, pingRedis, type RoleCheckedRedis } from '@atoll/redis';
import type { RedisRole } from '@atoll/redis-keys';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

export type RedisClients = Partial<Record<RedisRole, RoleCheckedRedis>>;

declare module 'fastify' {
  interface FastifyInstance {
    /** Producer clients (fail fast) per Redis role this service uses. */
    redis: RedisClients;
  }
}

export interface RedisPluginOptions {
  service: string;
  urls: Partial<Record<RedisRole, string>>;
  commandTimeoutMs?: number;
  connectWaitMs?: number;
  /** Roles whose client auto-pipelines (see @atoll/redis `autoPipelining`). */
  autoPipelining?: RedisRole[];
}

const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (app, opts) => {
  const clients: RedisClients = {};
  app.decorate('redis', clients);
  const roles = Object.keys(opts.urls) as RedisRole[];
  const connected = await Promise.allSettled(
    roles.map(async (role) => {
      const url = opts.urls[role];
      if (!url) return;
      clients[role] = await connectRedis({
        url,
        role,
        use: 'producer',
        name: `${opts.service}:${role}`,
        log: app.log,
        ...(opts.commandTimeoutMs ? { commandTimeoutMs: opts.commandTimeoutMs } : {}),
        ...(opts.connectWaitMs ? { connectWaitMs: opts.connectWaitMs } : {}),
        ...(opts.autoPipelining?.includes(role) ? { autoPipelining: true } : {}),
      });
    }),
  );
  const failed = connected.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await Promise.all(Object.values(clients).map((c) => closeRedis(c)));
    throw failed.reason;
  }
  for (const role of roles) {
    const client = clients[role];
    if (client) app.health.add(`redis-${role}`, async () => client.roleOk() && (await pingRedis(client)));
  }
  app.addHook('onClose', async () => {
    await Promise.all(Object.values(clients).map((c) => closeRedis(c)));
  });
};

export const redisRoles = fp(redisPlugin, { name: '@atoll/redis-roles', dependencies: ['@atoll/health'] });

declare module 'fastify' {
  interface FastifyInstance {
    /** The service's PostgreSQL, bound to its own schema. Typed by the app through `dbOf<DB>(app)`. */
    db: Kysely<unknown>;
  }
}

export interface DbPluginOptions {
  url: string;
  schema: string;
  poolSize?: number;
  /** Answer with Server-Timing (SERVER_TIMING; default false). */
  serverTiming?: boolean;
}

/**
 * With `serverTiming` (SERVER_TIMING, off by default), every response says what the database cost it:
 * `Server-Timing: db;dur=<ms>;desc="<n> queries"`. The count follows the request through its async work
 * (AsyncLocalStorage), so a list that issues a query per row shows at once, in a browser's network panel
 * or a test. Off, nothing is counted or sent: query counts and times tell an attacker which inputs hit
 * the database (account enumeration by timing, cache probing).
 */
const queryCost = new AsyncLocalStorage<{ count: number; ms: number }>();

const dbPlugin: FastifyPluginAsync<DbPluginOptions> = async (app, opts) => {
  // Loaded here, so a service without PostgreSQL (the gateway) never loads kysely and pg.
  const { createDb, pingDb } = await import('@atoll/db');
  const db = createDb<unknown>({
    url: opts.url,
    schema: opts.schema,
    ...(opts.poolSize ? { poolSize: opts.poolSize } : {}),
    onQuery: (ms) => {
      const cost = queryCost.getStore();
      if (!cost) return;
      cost.count += 1;
      cost.ms += ms;
    },
  });
  app.decorate('db', db);
  if (opts.serverTiming) {
    app.addHook('onRequest', (_request, _reply, done) => queryCost.run({ count: 0, ms: 0 }, done));
    app.addHook('onSend', (_request, reply, payload, done) => {
      const cost = queryCost.getStore();
      if (cost) reply.header('server-timing', `db;dur=${cost.ms.toFixed(1)};desc="${cost.count} queries"`);
      done(null, payload);
    });
  }
  app.health.add('postgres', () => pingDb(db));
  app.addHook('onClose', async () => {
    await db.destroy();
  });
};

export const database = fp(dbPlugin, { name: '@atoll/db', dependencies: ['@atoll/health'] });

/** The app's database with its table types. */
export function dbOf<DB>(app: { db: Kysely<unknown> }): Kysely<DB> {
  return app.db as Kysely<DB>;
}
