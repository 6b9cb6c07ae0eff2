/**
 * A service with several instances behind the proxy (buildApp, real redis-session, real upstreams on
 * loopback): a request an instance cannot have received goes to another, whatever its method; one it may
 * have received goes again only when it is a GET; every attempt carries an identity assertion.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { freePort } from '@atoll/testkit';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers.ts';

/** A raw HTTP server on loopback; `onRequest` gets each request's socket and its count on that socket. */
async function rawServer(
  onRequest: (socket: Socket, nth: number) => void,
  listenPort = 0,
): Promise<{ url: string; server: Server }> {
  const server = createServer((socket) => {
    let nth = 0;
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      // Requests here have no body or a small JSON one with Content-Length.
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n');
        if (end < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        nth += 1;
        onRequest(socket, nth);
      }
    });
    socket.on('error', () => {});
  });
  server.listen(listenPort, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}`, server };
}

const OK_BODY = '{"raw":true}';
const OK = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${OK_BODY.length}\r\nConnection: keep-alive\r\n\r\n${OK_BODY}`;

const DRAINING = `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${OK_BODY.length}\r\nConnection: close\r\nx-atoll-draining: 1\r\n\r\n${OK_BODY}`;

const article = { article: { title: 'Retry', description: 'd', body: 'b' } };

/** A gateway whose content instances are `first`, then the recording upstream. */
function gatewayWith(first: string): Promise<TestGateway> {
  return startGateway({}, { envWith: (upstream) => ({ CONTENT_URL: `${first},${upstream}` }) });
}

async function retries(gateway: TestGateway): Promise<Record<string, number>> {
  const metric = await gateway.app.metrics.registry.getSingleMetric('gateway_upstream_retries_total')?.get();
  return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.kind), v.value]));
}

describe('proxy retries across instances (buildApp, real upstreams)', () => {
  let gateway: TestGateway | undefined;
  const servers: Server[] = [];
  afterEach(async () => {
    await gateway?.close();
    gateway = undefined;
  });
  afterAll(() => {
    for (const s of servers) s.close();
  });

  it('sends any request an instance refused to connect to the next one, and skips the refusing one afterwards', async () => {
    gateway = await gatewayWith(`http://127.0.0.1:${await freePort()}`);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const res = await gateway.app.inject({ method: 'POST', url: '/api/articles', payload: article });
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    const posts = gateway.upstream.received.filter((r) => r.url === '/api/articles');
    expect(posts).toHaveLength(6);
    for (const post of posts) {
      expect(post.headers['x-atoll-identity']).toMatch(/^v3\./);
      expect(post.body).toBe(JSON.stringify(article));
    }
    // Refused once, then skipped: one retry in all.
    expect(await retries(gateway)).toEqual({ unsent: 1 });
  });

  it('sends a request again when a reused keep-alive connection is closed before its answer (any method)', async () => {
    // Answers the first request on each connection and keeps it open, then closes it as the next arrives:
    // the race of a draining service closing an idle connection just as the gateway writes on it.
    const closing = await rawServer((socket, nth) => {
      if (nth === 1) socket.write(OK);
      else socket.end();
    });
    servers.push(closing.server);
    gateway = await gatewayWith(closing.url);
    const answers: unknown[] = [];
    for (let i = 0; i < 4; i += 1) {
      const res = await gateway.app.inject({ method: 'POST', url: '/api/articles', payload: article });
      expect(res.statusCode).toBe(200);
      answers.push(res.json());
    }
    // 1: the raw instance answers; 2: the recording one; 3: the raw one closes its reused connection, so
    // the recording one answers; 4: the raw one again, on a new connection.
    expect(answers).toEqual([{ raw: true }, { upstream: true }, { upstream: true }, { raw: true }]);
    expect(await retries(gateway)).toEqual({ unsent: 1 });
  });

  it('once an instance drains, sends it nothing while another answers, even one skipped a moment ago', async () => {
    // The order of a rolling redeploy: instance A was replaced (its port refused a moment ago, so it is
    // still skipped), and B starts draining as A comes back. Were A and B both skipped alike, B would
    // take every other request until it closes its connections, and a POST written on one as it closes
    // is lost (a reset).
    const portA = await freePort();
    let drained = 0;
    const draining = await rawServer((socket) => {
      drained += 1;
      socket.end(DRAINING);
    });
    servers.push(draining.server);
    gateway = await startGateway(
      {},
      { envWith: () => ({ CONTENT_URL: `http://127.0.0.1:${portA},${draining.url}` }) },
    );
    // A refuses (skipped), so B answers, and says it drains (skipped too).
    const first = await gateway.app.inject({ method: 'POST', url: '/api/articles', payload: article });
    expect(first.statusCode).toBe(200);
    expect(first.headers['x-atoll-draining']).toBeUndefined();
    expect(drained).toBe(1);
    let answeredByA = 0;
    const back = await rawServer((socket) => {
      answeredByA += 1;
      socket.write(OK);
    }, portA);
    servers.push(back.server);
    const statuses: number[] = [];
    for (let i = 0; i < 6; i += 1) {
      const res = await gateway.app.inject({ method: 'POST', url: '/api/articles', payload: article });
      statuses.push(res.statusCode);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    expect({ answeredByA, drained }).toEqual({ answeredByA: 6, drained: 1 });
    expect(await retries(gateway)).toEqual({ unsent: 1 });
  });

  it('a connection reset after the request was sent: a GET goes to another instance, a POST is a 502', async () => {
    // Reads the whole request, then resets the connection without a byte of answer (a crash).
    const resetting = await rawServer((socket) => socket.resetAndDestroy());
    servers.push(resetting.server);
    gateway = await gatewayWith(resetting.url);
    // Each request starts with the resetting instance (the one after the instance used last).
    const get = await gateway.app.inject({ url: '/api/articles?limit=1' });
    expect(get.statusCode).toBe(200);
    expect(get.json()).toEqual({ upstream: true });
    const post = await gateway.app.inject({ method: 'POST', url: '/api/articles', payload: article });
    expect(post.statusCode).toBe(502);
    expect(post.json()).toMatchObject({
      code: 'GATEWAY_UPSTREAM_UNAVAILABLE',
      errors: { upstream: ['content is unavailable'] },
    });
    expect(gateway.upstream.received.map((r) => r.url)).toEqual(['/api/articles?limit=1']);
    expect(await retries(gateway)).toEqual({ sent: 1 });
  });
});
