/**
 * Headers about one connection stay on their connection (buildApp listening on loopback, a real upstream,
 * raw HTTP/1 on sockets, since fetch will not send these headers): whatever of them a client sends, a
 * proxied request reaches the service without them and is answered; the service's own `Connection` and
 * `Keep-Alive` never reach the client, so a client that asks for its connection to close gets that.
 */
import { rawRequest } from '@atoll/testkit';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers.ts';

/** Each hop-by-hop header with a value a client could send. */
const HOP_HEADERS: Record<string, string> = {
  Connection: 'keep-alive, X-Dropped-Too',
  'Keep-Alive': 'timeout=5, max=100',
  'Proxy-Connection': 'keep-alive',
  'Proxy-Authorization': 'Basic dXNlcjpwYXNz',
  TE: 'trailers',
  Trailer: 'X-Checksum',
  Upgrade: 'h2c',
  'HTTP2-Settings': 'AAMAAABkAARAAAAAAAIAAAAA',
  Expect: '100-continue',
};

describe('hop-by-hop headers (buildApp, real upstream, raw sockets)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway({}, { listen: true });
  });
  afterAll(async () => {
    await gateway.close();
  });

  it('drops any of them on the way to the service, and the service answers', async () => {
    const names = Object.keys(HOP_HEADERS);
    await fc.assert(
      fc.asyncProperty(
        fc.subarray(names, { minLength: 1 }),
        fc.boolean(),
        fc.boolean(),
        async (sent, post, chunked) => {
          const before = gateway.upstream.received.length;
          const body = '{"comment":{"body":"hop"}}';
          const head = [
            `${post ? 'POST /api/articles/a-slug/comments' : 'GET /api/tags'} HTTP/1.1`,
            'Host: 127.0.0.1',
            'X-Dropped-Too: named by Connection',
            ...sent.map((name) => `${name}: ${HOP_HEADERS[name]}`),
            ...(post
              ? [
                  'Content-Type: application/json',
                  chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`,
                ]
              : []),
          ].join('\r\n');
          const payload = post
            ? chunked
              ? `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
              : body
            : '';
          const res = await rawRequest(gateway.url, `${head}\r\n\r\n${payload}`);
          expect(res.status, `${sent.join(', ')}: ${res.body}`).toBe(200);
          expect(JSON.parse(res.body)).toEqual({ upstream: true });
          const received = gateway.upstream.received.slice(before);
          expect(received).toHaveLength(1);
          const headers = received[0]?.headers ?? {};
          // undici says `Connection: keep-alive` for its own pool; nothing of the client's gets through.
          for (const name of names.filter((n) => n !== 'Connection'))
            expect(headers[name.toLowerCase()], name).toBeUndefined();
          expect([undefined, 'keep-alive']).toContain(headers.connection);
          // A header the client's Connection names is about the connection too; otherwise it goes on.
          expect(headers['x-dropped-too']).toBe(
            sent.includes('Connection') ? undefined : 'named by Connection',
          );
          // The bytes the client sent, whichever way they were framed.
          if (post) expect(received[0]?.body).toBe(body);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("keeps the service's Connection and Keep-Alive from the client: Connection: close and HTTP/1.0 close", async () => {
    // The service (Fastify) answers with `Connection: keep-alive` and its own `Keep-Alive: timeout=…`.
    const untilClose = { untilClose: true, timeoutMs: 1000 };
    const asked = await rawRequest(
      gateway.url,
      'GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      untilClose,
    );
    expect(asked.status).toBe(200);
    expect(asked.headers.connection).toBe('close');
    expect(asked.headers['keep-alive']).toBeUndefined();
    expect(asked.closed).toBe(true);

    const old = await rawRequest(gateway.url, 'GET /api/tags HTTP/1.0\r\nHost: x\r\n\r\n', untilClose);
    expect(old.status).toBe(200);
    expect(old.closed).toBe(true);

    // A client that keeps its connection keeps it.
    const kept = await rawRequest(gateway.url, 'GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n', untilClose);
    expect(kept.status).toBe(200);
    expect(kept.closed).toBe(false);
  });
});
