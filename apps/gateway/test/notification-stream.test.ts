/**
 * The live stream and its session (buildApp, real redis-session): an event published after the session
 * is gone is not delivered, even long before the next heartbeat; the stream ends with `event: end`.
 */
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import { RedisServer } from '@atoll/testkit';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.ts';
import { startUpstream, testConfig, type Upstream } from './helpers.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('live stream ends with its session (buildApp, real redis-session)', () => {
  let redis: RedisServer;
  let client: RoleCheckedRedis;
  let upstream: Upstream;
  let app: FastifyInstance;
  let base: string;
  let sessions: SessionStore;
  let channel: string;

  beforeAll(async () => {
    redis = await RedisServer.start('session');
    client = await connectRedis({ url: redis.url, role: 'session', use: 'producer', name: 't', log: silent });
    upstream = await startUpstream();
    // Heartbeats far apart: only the check before each event can end the stream in time.
    const config = testConfig(redis.url, upstream.url, { SSE_HEARTBEAT_MS: '60000' });
    app = await buildApp(config);
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    const keys = createKeys(config.keyPrefix);
    sessions = new SessionStore(client, keys);
    channel = keys.liveNotifications();
  });
  afterAll(async () => {
    await app.close();
    await upstream.server.close();
    await closeRedis(client);
    await redis.dispose();
  });

  it('delivers while the session lives; after it is destroyed, the next event ends the stream instead', async () => {
    const { token } = await sessions.create({ userId: 'u-s', username: 'sue', roles: ['user'] });
    const res = await fetch(`${base}/api/notifications/stream`, {
      headers: { authorization: `Token ${token}` },
    });
    expect(res.status).toBe(200);
    let text = '';
    const reading = (async () => {
      const reader = (res.body as ReadableStream<Uint8Array>)
        .pipeThrough(new TextDecoderStream())
        .getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += value;
      }
    })();
    const publish = (id: number) =>
      client.publish(channel, JSON.stringify({ userId: 'u-s', notification: { id, type: 'follow' } }));
    const until = async (check: () => boolean) => {
      for (let i = 0; i < 50 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
      return check();
    };
    await until(() => text.includes('retry:'));
    await publish(1);
    expect(await until(() => text.includes('id: 1\n'))).toBe(true);

    await sessions.destroy(token);
    await publish(2);
    const started = Date.now();
    await reading;
    expect(Date.now() - started).toBeLessThan(2000);
    expect(text).not.toContain('id: 2\n');
    expect(text.endsWith('event: end\ndata: {"reason":"session-ended"}\n\n')).toBe(true);
  });
});
