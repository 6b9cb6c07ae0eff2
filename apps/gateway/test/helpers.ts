/** What the gateway's tests share: a real upstream that records what reaches it, and a config. */
import { randomBytes } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import { type GatewayConfig, loadConfig } from '../src/config.ts';

export const secret = randomBytes(32).toString('hex');

export interface Upstream {
  server: FastifyInstance;
  url: string;
  received: Array<{ url: string; headers: Record<string, unknown>; body: unknown }>;
}

/** A Fastify upstream on loopback answering `{ upstream: true }` to everything (and `/slow` late). */
export async function startUpstream(): Promise<Upstream> {
  const received: Upstream['received'] = [];
  const server = Fastify();
  server.removeAllContentTypeParsers();
  server.addContentTypeParser('*', { parseAs: 'string' }, (_r, body, done) => done(null, body));
  server.get('/api/articles/slow', async () => {
    await new Promise((r) => setTimeout(r, 2500));
    return { late: true };
  });
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
    IDENTITY_SECRET: secret,
    REDIS_SESSION_URL: redisUrl,
    REDIS_KEY_PREFIX: `gw${randomBytes(3).toString('hex')}`,
    AUTH_URL: upstreamUrl,
    CONTENT_URL: upstreamUrl,
    NOTIFIER_URL: upstreamUrl,
    ...env,
  });
}
