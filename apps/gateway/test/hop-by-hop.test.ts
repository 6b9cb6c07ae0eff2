/**
 * Headers about one connection stay on their connection (buildApp listening on loopback, a real upstream,
 * raw HTTP/1 on sockets, since fetch will not send these headers): whatever of them a client sends, a
 * proxied request reaches the service without them and is answered; the service's own `Connection` and
 * `Keep-Alive` never reach the client, so a client that asks for its connection to close gets that.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
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

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The server closed the connection after the response. */
  closed: boolean;
}

/** Sends one raw request on a new connection and reads one response (skipping a `100 Continue`). */
async function rawRequest(url: string, request: string, waitForCloseMs = 300): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let data = '';
  let closed = false;
  socket.on('data', (chunk) => {
    data += chunk.toString('latin1');
  });
  socket.on('end', () => {
    closed = true;
  });
  socket.on('error', () => {});
  socket.write(request);
  const parse = (): RawResponse | null => {
    const text = data.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, '');
    const end = text.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const body = text.slice(end + 4);
    if (headers['content-length'] !== undefined && body.length < Number(headers['content-length']))
      return null;
    return { status: Number(statusLine.split(' ')[1]), headers, body, closed };
  };
  const until = Date.now() + 5000;
  let response = parse();
  while (response === null && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 5));
    response = parse();
  }
  if (response === null) throw new Error(`no complete response: ${JSON.stringify(data)}`);
  // Give a closing server the moment it takes.
  const closeBy = Date.now() + waitForCloseMs;
  while (!closed && Date.now() < closeBy) await new Promise((r) => setTimeout(r, 5));
  socket.destroy();
  return { ...response, closed };
}

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
          const res = await rawRequest(gateway.url, `${head}\r\n\r\n${payload}`, 0);
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
    const asked = await rawRequest(
      gateway.url,
      'GET /api/tags HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
    );
    expect(asked.status).toBe(200);
    expect(asked.headers.connection).toBe('close');
    expect(asked.headers['keep-alive']).toBeUndefined();
    expect(asked.closed).toBe(true);

    const old = await rawRequest(gateway.url, 'GET /api/tags HTTP/1.0\r\nHost: x\r\n\r\n');
    expect(old.status).toBe(200);
    expect(old.closed).toBe(true);

    // A client that keeps its connection keeps it.
    const kept = await rawRequest(gateway.url, 'GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(kept.status).toBe(200);
    expect(kept.closed).toBe(false);
  });
});
