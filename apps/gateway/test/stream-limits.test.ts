/**
 * What one gateway instance lets live streams take (buildApp listening, real redis-session): a cap per
 * client address whatever the accounts (429), a cap in all (503), both with Retry-After in the RealWorld
 * shape and refused before a stream starts; and a longest lifetime, after which the stream ends with a
 * `retry:` hint so the EventSource comes back with its Last-Event-ID (the catch-up over the reconnect is
 * e2e/test/edge-limits.test.ts). HEAD of the stream opens none.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers.ts';

interface Opened {
  status: number;
  headers: Headers;
  body: unknown;
  text: () => Promise<string>;
  close: () => void;
}

async function openStream(base: string, token: string, address: string): Promise<Opened> {
  const controller = new AbortController();
  const res = await fetch(`${base}/api/notifications/stream`, {
    headers: { authorization: `Token ${token}`, 'x-forwarded-for': address },
    signal: controller.signal,
  });
  const body = res.status === 200 ? null : await res.json();
  return {
    status: res.status,
    headers: res.headers,
    body,
    text: () => res.text(),
    close: () => controller.abort(),
  };
}

describe('live stream caps (buildApp listening, real redis-session)', () => {
  let gateway: TestGateway;
  const open: Opened[] = [];
  const token = async (userId: string) =>
    (await gateway.sessions.create({ userId, username: userId, roles: ['user'] })).token;
  const stream = async (userId: string, address: string) => {
    const s = await openStream(gateway.url, await token(userId), address);
    open.push(s);
    return s;
  };
  /** Until a closed stream's slot is free again (the server sees the close a moment later). */
  const eventually = async (attempt: () => Promise<Opened>) => {
    for (let i = 0; i < 50; i += 1) {
      const s = await attempt();
      if (s.status === 200) return s;
      await new Promise((r) => setTimeout(r, 100));
    }
    return attempt();
  };

  beforeAll(async () => {
    gateway = await startGateway(
      {
        TRUSTED_PROXIES: '127.0.0.1,::1',
        SSE_MAX_STREAMS_PER_ADDRESS: '2',
        SSE_MAX_STREAMS: '3',
        SSE_MAX_STREAMS_PER_USER: '2',
      },
      { listen: true },
    );
  });
  afterAll(async () => {
    for (const s of open) s.close();
    await gateway.close();
  });

  it('per address, whatever the accounts: beyond the cap 429 STREAMS_TOO_MANY with Retry-After; other addresses are not affected', async () => {
    expect((await stream('a1', '198.51.100.1')).status).toBe(200);
    const second = await stream('a2', '198.51.100.1');
    expect(second.status).toBe(200);
    const third = await stream('a3', '198.51.100.1');
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('60');
    expect(third.body).toEqual({
      errors: { stream: ['too many live streams from this address, try again later'] },
      code: 'STREAMS_TOO_MANY',
    });
    // Another address is another client.
    expect((await stream('a3', '198.51.100.2')).status).toBe(200);
    // A slot that ends is free again.
    second.close();
    expect((await eventually(() => stream('a3', '198.51.100.1'))).status).toBe(200);
  });

  it('in all on this instance: beyond the cap 503 STREAMS_UNAVAILABLE with Retry-After', async () => {
    // Three are open (the test before): the instance is full, whatever the address.
    const refused = await stream('b1', '203.0.113.7');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(refused.body).toEqual({
      errors: { stream: ['this server holds as many live streams as it can, try again shortly'] },
      code: 'STREAMS_UNAVAILABLE',
    });
    for (const s of open) s.close();
    expect((await eventually(() => stream('b1', '203.0.113.7'))).status).toBe(200);
  });

  it("a user's new stream that ends their oldest from the same address takes its slot instead of being refused", async () => {
    for (const s of open) s.close();
    const user = await token('c1');
    const first = await eventually(() => openStream(gateway.url, user, '192.0.2.1'));
    const second = await openStream(gateway.url, user, '192.0.2.1');
    open.push(first, second);
    expect(second.status).toBe(200);
    // Per user 2, per address 2: the third ends the first rather than being refused.
    const third = await openStream(gateway.url, user, '192.0.2.1');
    open.push(third);
    expect(third.status).toBe(200);
    expect(await first.text()).toContain('data: {"reason":"too-many-streams"}');
  });
});

describe('HEAD of the stream (buildApp, real redis-session)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });
  afterAll(() => gateway.close());

  it('is not the stream route: it opens no stream (the proxy passes it to the notifier)', async () => {
    const { token } = await gateway.sessions.create({ userId: 'h1', username: 'hal', roles: ['user'] });
    const res = await gateway.app.inject({
      method: 'HEAD',
      url: '/api/notifications/stream',
      headers: { authorization: `Token ${token}` },
    });
    expect(res.headers['content-type']).not.toContain('text/event-stream');
    expect(gateway.upstream.received.map((r) => r.url)).toContain('/api/notifications/stream');
  });
});

describe('live stream lifetime (buildApp listening, real redis-session)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ SSE_MAX_LIFETIME_S: '1', SSE_HEARTBEAT_MS: '200' }, { listen: true });
  });
  afterAll(() => gateway.close());

  it('ends after SSE_MAX_LIFETIME_S with a retry hint and event: reconnect (not event: end, which means stop)', async () => {
    const { token } = await gateway.sessions.create({ userId: 'l1', username: 'lou', roles: ['user'] });
    const res = await openStream(gateway.url, token, '127.0.0.1');
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text.startsWith('retry: 2000\n\n')).toBe(true);
    expect(text).toContain(': heartbeat');
    expect(text).toMatch(/\n\nretry: \d+\nevent: reconnect\ndata: \{"reason":"max-lifetime"\}\n\n$/);
    expect(text).not.toContain('event: end');
  });
});
