/** What the gateway's tests share: a real upstream that records what reaches it, and a config. */
import { randomBytes } from 'node:crypto';
import type { LiveNotification } from '@atoll/events';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { identityKeyPair, RedisServer } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildApp } from '../src/app.ts';
import { type GatewayConfig, loadConfig } from '../src/config.ts';

/** A notification as the notifier publishes it live (`@atoll/events`), with the id `id`. */
export function liveNotification(id: number, createdAt = '2026-01-01T00:00:00.000Z'): LiveNotification {
  return {
    id,
    type: 'follow',
    actor: { username: 'ada' },
    article: null,
    commentId: null,
    excerpt: null,
    createdAt,
    read: false,
  };
}

/** The gateway's identity key pair in these tests. */
export const identityKeys = identityKeyPair();

export interface Upstream {
  server: FastifyInstance;
  url: string;
  received: Array<{ url: string; headers: Record<string, unknown>; body: unknown }>;
}

/**
 * A Fastify upstream on loopback answering `{ upstream: true }` to everything (and `/slow` late,
 * `/api/tags/timed` with Server-Timing).
 */
export async function startUpstream(): Promise<Upstream> {
  const received: Upstream['received'] = [];
  const server = Fastify();
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', { parseAs: 'string' }, (_r, body, done) => done(null, body));
  server.get('/api/articles/slow', async () => {
    await new Promise((r) => setTimeout(r, 2500));
    return { late: true };
  });
  // As a service with SERVER_TIMING set answers.
  server.get('/api/tags/timed', async (_request, reply) =>
    reply.header('server-timing', 'db;dur=1.2;desc="2 queries"').send({ timed: true }),
  );
  server.all('/*', async (request) => {
    received.push({ url: request.url, headers: request.headers, body: request.body });
    return { upstream: true };
  });
  const url = await server.listen({ host: '127.0.0.1', port: 0 });
  return { server, url, received };
}

/** The gateway's configuration for a test: every upstream at `upstreamUrl`, plus `env`. */
export function testConfig(
  redisUrl: string,
  upstreamUrl: string,
  env: Record<string, string> = {},
): GatewayConfig {
  return loadConfig({
    LOG_LEVEL: 'silent',
    IDENTITY_PRIVATE_KEY: identityKeys.privateKeyText,
    REDIS_SESSION_URL: redisUrl,
    REDIS_KEY_PREFIX: `gw${randomBytes(3).toString('hex')}`,
    AUTH_URL: upstreamUrl,
    CONTENT_URL: upstreamUrl,
    NOTIFIER_URL: upstreamUrl,
    ...env,
  });
}

/** A gateway under test on its own real redis-session, every upstream the recording one. */
export interface TestGateway {
  app: FastifyInstance;
  config: GatewayConfig;
  redis: RedisServer;
  /** A client of that redis-session, for what a test sets up or reads there. */
  client: RoleCheckedRedis;
  upstream: Upstream;
  /** Sessions as auth makes them, on the gateway's keys. */
  sessions: SessionStore;
  /** The listening address with `listen`, else ''. */
  url: string;
  close(): Promise<void>;
}

const silent = { info() {}, warn() {}, error() {} };

/** Starts redis-session and the upstream, builds the gateway with `env`, and listens on loopback if asked. */
export async function startGateway(
  env: Record<string, string> = {},
  opts: {
    listen?: boolean;
    /** More environment that names the recording upstream (e.g. a list of instances with it). */
    envWith?: (upstreamUrl: string) => Record<string, string>;
  } = {},
): Promise<TestGateway> {
  const redis = await RedisServer.start('session');
  const client = await connectRedis({
    url: redis.url,
    role: 'session',
    use: 'producer',
    name: 't',
    log: silent,
  });
  const upstream = await startUpstream();
  const config = testConfig(redis.url, upstream.url, { ...env, ...opts.envWith?.(upstream.url) });
  const app = await buildApp(config);
  const url = opts.listen ? await app.listen({ host: '127.0.0.1', port: 0 }) : '';
  return {
    app,
    config,
    redis,
    client,
    upstream,
    sessions: new SessionStore(client, createKeys(config.keyPrefix)),
    url,
    close: async () => {
      await app.close();
      await upstream.server.close();
      await closeRedis(client);
      await redis.dispose();
    },
  };
}
