/**
 * The gateway's own server bounds time (buildApp listening, real redis-session, raw sockets): a login
 * body sent a byte at a time is cut with 408 once REQUEST_TIMEOUT_MS has passed, and never reaches the
 * upstream; a live stream, a response that lasts, is not cut by that timeout.
 */
import { slowRequest } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { identityKeys, startGateway, type TestGateway } from './helpers.ts';

describe('request timeout at the gateway (buildApp listening, real redis-session)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({ REQUEST_TIMEOUT_MS: '1000', SSE_HEARTBEAT_MS: '300' }, { listen: true });
  });
  afterAll(() => gateway.close());

  it('a login body sent a byte every 400 ms is cut with 408 long before it is complete, and is not proxied', async () => {
    const body = JSON.stringify({ user: { email: 'slow@example.com', password: 'correct horse' } });
    const head =
      'POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${body.length}\r\n\r\n`;
    const { response, bodyBytesSent } = await slowRequest(gateway.url, head, body, { intervalMs: 400 });
    expect(bodyBytesSent).toBeLessThan(body.length);
    expect(response?.status).toBe(408);
    expect(response?.closed).toBe(true);
    expect(JSON.parse(response?.body ?? '{}')).toMatchObject({ code: 'REQUEST_TIMEOUT' });
    expect(gateway.upstream.received.filter((r) => r.url === '/api/users/login')).toEqual([]);
  }, 30_000);

  it('a live stream outlives the request timeout (it is a response, not a request still arriving)', async () => {
    const { token } = await gateway.sessions.create({ userId: 'u-t', username: 'tim', roles: ['user'] });
    const controller = new AbortController();
    const res = await fetch(`${gateway.url}/api/notifications/stream`, {
      headers: { authorization: `Token ${token}` },
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    // Heartbeats for three times the request timeout: the stream is still open and writing.
    const until = Date.now() + 3000;
    while (Date.now() < until) {
      const { value, done } = await reader.read();
      expect(done).toBe(false);
      text += value;
    }
    expect(text.split(': heartbeat').length - 1).toBeGreaterThanOrEqual(5);
    controller.abort();
  }, 30_000);
});

describe('CONNECTION_TIMEOUT_MS against the waits it must outlast (loadConfig)', () => {
  const base = {
    IDENTITY_PRIVATE_KEY: identityKeys.privateKeyText,
    REDIS_SESSION_URL: 'redis://127.0.0.1:1',
    AUTH_URL: 'http://127.0.0.1:1',
    CONTENT_URL: 'http://127.0.0.1:1',
    NOTIFIER_URL: 'http://127.0.0.1:1',
  };
  it('has defaults that fit, and refuses one at or below an upstream timeout or the heartbeat', () => {
    expect(loadConfig(base).timeouts).toEqual({
      requestMs: 30_000,
      connectionMs: 60_000,
      keepAliveMs: 72_000,
    });
    expect(() => loadConfig({ ...base, UPSTREAM_ROUTE_TIMEOUTS: '/api/articles=60000' })).toThrow(
      /CONNECTION_TIMEOUT_MS \(60000\) must be above the longest upstream timeout \(60000/,
    );
    expect(() => loadConfig({ ...base, CONNECTION_TIMEOUT_MS: '5000', UPSTREAM_TIMEOUT_MS: '4000' })).toThrow(
      /must be above SSE_HEARTBEAT_MS \(15000\)/,
    );
  });
});
