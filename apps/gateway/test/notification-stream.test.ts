/**
 * The live stream and its session (buildApp, real redis-session): an event published after the session
 * is gone is not delivered, even long before the next heartbeat; the stream ends with `event: end`. A
 * malformed message on the channel is dropped and counted, and the stream goes on. When the hub's
 * subscription comes back after it was down, every open stream is asked to reconnect (and so to catch up).
 */

import { encodeLiveMessage } from '@atoll/events';
import type { RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { SessionStore } from '@atoll/session-store';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { liveNotification as notification, startGateway, type TestGateway } from './helpers.ts';

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
    const publish = (id: number) => client.publish(channel, encodeLiveMessage('u-s', notification(id)));
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

  it('drops and counts a malformed message; the stream goes on and delivers the next', async () => {
    const { token } = await sessions.create({ userId: 'u-m', username: 'max', roles: ['user'] });
    const controller = new AbortController();
    const res = await fetch(`${base}/api/notifications/stream`, {
      headers: { authorization: `Token ${token}` },
      signal: controller.signal,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const readUntil = async (part: string) => {
      while (!text.includes(part)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
      return text.includes(part);
    };
    await readUntil('retry:');
    const dropped = async () => {
      const metric = gateway.app.metrics.registry.getSingleMetric('gateway_live_messages_dropped_total');
      return (await metric?.get())?.values[0]?.value ?? 0;
    };
    const before = await dropped();
    for (const raw of [
      'not-json',
      '{}',
      JSON.stringify({ userId: 'u-m', notification: { id: 7, type: 'follow' } }),
      JSON.stringify({ v: 9, userId: 'u-m', notification: notification(8) }),
    ])
      await client.publish(channel, raw);
    await client.publish(channel, encodeLiveMessage('u-m', notification(9)));
    expect(await readUntil('id: 9\n')).toBe(true);
    expect(text).not.toMatch(/id: [78]\n/);
    expect(await dropped()).toBe(before + 4);
    controller.abort();
  });

  it('asks every open stream to reconnect once its subscription is back after it was down', async () => {
    const open = async (userId: string) => {
      const { token } = await sessions.create({ userId, username: userId, roles: ['user'] });
      const controller = new AbortController();
      const res = await fetch(`${base}/api/notifications/stream`, {
        headers: { authorization: `Token ${token}` },
        signal: controller.signal,
      });
      expect(res.status).toBe(200);
      const stream = { text: '', ended: false, controller };
      void (async () => {
        const reader = (res.body as ReadableStream<Uint8Array>)
          .pipeThrough(new TextDecoderStream())
          .getReader();
        for (;;) {
          const { value, done } = await reader.read().catch(() => ({ value: '', done: true }));
          if (done) break;
          stream.text += value;
        }
        stream.ended = true;
      })();
      return stream;
    };
    const until = async (check: () => boolean, ms = 10_000) => {
      for (let waited = 0; waited < ms && !check(); waited += 50) await new Promise((r) => setTimeout(r, 50));
      return check();
    };
    const reconnected = async () => {
      const metric = gateway.app.metrics.registry.getSingleMetric('gateway_live_streams_reconnected_total');
      return (await metric?.get())?.values[0]?.value ?? 0;
    };
    const before = await reconnected();
    const streams = [await open('u-g1'), await open('u-g2'), await open('u-g2')];
    expect(await until(() => streams.every((s) => s.text.includes('retry:')))).toBe(true);

    // The subscriber's connection is cut; its client connects and subscribes again by itself.
    await client.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    expect(await until(() => streams.every((s) => s.ended))).toBe(true);
    for (const { text } of streams) {
      const last = /retry: (\d+)\nevent: reconnect\ndata: \{"reason":"missed-events"\}\n\n$/.exec(text);
      expect(last, text).not.toBeNull();
      expect(Number(last?.[1])).toBeGreaterThanOrEqual(500);
      expect(Number(last?.[1])).toBeLessThan(10_500);
    }
    expect(await reconnected()).toBe(before + 3);

    // A stream opened now is live again, and stays open.
    const again = await open('u-g1');
    expect(await until(() => again.text.includes('retry:'))).toBe(true);
    await client.publish(channel, encodeLiveMessage('u-g1', notification(41)));
    expect(await until(() => again.text.includes('id: 41\n'))).toBe(true);
    expect(again.ended).toBe(false);
    again.controller.abort();
  });
});
