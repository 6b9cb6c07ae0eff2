/**
 * The live stream and its session (buildApp, real redis-session): an event published after the session
 * is gone is not delivered, even long before the next heartbeat; the stream ends with `event: end`.
 */

import type { RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { SessionStore } from '@atoll/session-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers.ts';

describe('live stream ends with its session (buildApp, real redis-session)', () => {
  let gateway: TestGateway;
  let client: RoleCheckedRedis;
  let base: string;
  let sessions: SessionStore;
  let channel: string;

  beforeAll(async () => {
    // Heartbeats far apart: only the check before each event can end the stream in time.
    gateway = await startGateway(
      { SSE_HEARTBEAT_MS: '60000', CONNECTION_TIMEOUT_MS: '120000' },
      { listen: true },
    );
    ({ client, sessions, url: base } = gateway);
    channel = createKeys(gateway.config.keyPrefix).liveNotifications();
  });
  afterAll(() => gateway.close());

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
