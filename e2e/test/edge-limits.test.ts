/**
 * What a slow or long-lived client may hold, on the whole stack as real processes:
 * - a request must arrive whole within REQUEST_TIMEOUT_MS: a login body sent a byte at a time is cut
 *   with 408, at the gateway and at a service (auth) called directly;
 * - a live stream's longest life (SSE_MAX_LIFETIME_S) costs its client nothing: the gateway ends it with
 *   a `retry:` hint and `event: reconnect`, the client comes back with Last-Event-ID as an EventSource
 *   does, and every notification made meanwhile (while connected, or between two streams) arrives; a
 *   stream is not cut by the request timeout.
 */
import { gatewayHeaders, type Stack, slowRequest } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, IDENTITY_KEYS, signUpAll, startTestStack } from './helpers.ts';
import { openStream, type SseClient } from './sse.ts';

const PASSWORD = 'correct horse';

describe('slow clients and long-lived streams (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  const tokens: Record<string, string> = {};
  const streams: SseClient[] = [];

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('edge-limits', {
      REQUEST_TIMEOUT_MS: '1500',
      SSE_HEARTBEAT_MS: '300',
      SSE_MAX_LIFETIME_S: '2',
    }));
    api = apiClient(stack.gatewayUrl);
    Object.assign(tokens, await signUpAll(api, ['amy', 'ben', 'cat', 'dan', 'eve'], PASSWORD));
  }, 90_000);
  afterAll(async () => {
    for (const s of streams) s.close();
    await dispose();
  });

  it('a login body sent a byte every 500 ms is cut with 408, at the gateway and at auth itself', async () => {
    const body = JSON.stringify({ user: { email: 'amy@example.com', password: PASSWORD } });
    const head = (extra: Record<string, string>) =>
      'POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      Object.entries(extra)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('') +
      `Content-Length: ${body.length}\r\n\r\n`;
    // At auth, as the gateway sends it (auth answers nothing else): with the gateway's assertion.
    const asGateway = gatewayHeaders(IDENTITY_KEYS, 'auth', { method: 'POST', url: '/api/users/login' });
    for (const [url, extra] of [
      [stack.gatewayUrl, {}],
      [stack.services.auth.url, asGateway],
    ] as const) {
      const { response, bodyBytesSent } = await slowRequest(url, head(extra), body, { intervalMs: 500 });
      expect(bodyBytesSent, url).toBeLessThan(body.length);
      expect(response?.status, url).toBe(408);
      expect(response?.closed, url).toBe(true);
      expect(JSON.parse(response?.body ?? '{}'), url).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    }
  }, 60_000);

  it('reconnecting with Last-Event-ID after each lifetime end, the client gets every notification', async () => {
    const url = `${stack.gatewayUrl}/api/notifications/stream`;
    const received = new Set<string>();
    let lastId: string | undefined;
    let lifetimeEnds = 0;
    let done = false;
    // The client: an EventSource's loop, reconnecting with its last id whenever the server ends a stream.
    const client = (async () => {
      while (!done) {
        const stream = await openStream(url, tokens.amy ?? '', lastId);
        streams.push(stream);
        expect(stream.status).toBe(200);
        await stream.ended;
        for (const event of stream.events) {
          if (event.event === 'notification' && event.id) {
            received.add(event.id);
            lastId = event.id;
          }
        }
        const last = stream.events.at(-1);
        if (done) break;
        expect(last).toMatchObject({ event: 'reconnect', data: '{"reason":"max-lifetime"}' });
        lifetimeEnds += 1;
        // The server asked for this many ms; this client waits a little longer, to leave a gap.
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    let failure: unknown = null;
    client.catch((err) => {
      failure = err;
      done = true;
    });

    // Notifications made while connected and while between streams, over several lifetimes.
    for (const follower of ['ben', 'cat', 'dan', 'eve']) {
      expect((await api('POST', '/api/profiles/amy/follow', { token: tokens[follower] })).status).toBe(200);
      await new Promise((r) => setTimeout(r, 1200));
    }
    const stored = async () =>
      (
        (await api('GET', '/api/notifications', { token: tokens.amy })).body.notifications as Array<{
          id: number;
        }>
      ).map((n) => String(n.id));
    expect(await eventually(async () => (await stored()).length === 4, 30_000)).toBe(true);
    const all = await stored();
    const complete = await eventually(async () => all.every((id) => received.has(id)), 30_000);
    done = true;
    // A stream may be opening right now: close whatever is open until the client loop has stopped.
    const closer = setInterval(() => {
      for (const s of streams) s.close();
    }, 100);
    await client.catch(() => {});
    clearInterval(closer);
    expect(failure).toBeNull();
    expect(complete, `received ${[...received]} of ${all}`).toBe(true);
    expect(lifetimeEnds).toBeGreaterThanOrEqual(2);
  }, 120_000);
});
