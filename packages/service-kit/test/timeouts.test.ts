/**
 * Every service's server bounds time (fastifyOptions, a listening server and raw sockets): a body sent
 * a byte at a time is cut with 408 once REQUEST_TIMEOUT_MS has passed, instead of holding the request
 * open for as long as the client likes; a response that takes longer than that (a live stream) is not.
 */
import { slowRequest } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base, fastifyOptions } from '../src/index.ts';

const REQUEST_MS = 1000;

describe('request and connection timeouts (a listening server, raw sockets)', () => {
  let app: FastifyInstance;
  let url: string;
  beforeAll(async () => {
    app = Fastify(
      fastifyOptions({
        service: 'test',
        logLevel: 'silent',
        requestIds: 'internal',
        timeouts: { requestMs: REQUEST_MS, connectionMs: 10_000, keepAliveMs: 5000 },
      }),
    );
    await app.register(base, { service: 'test' });
    app.post('/api/users/login', async (request) => ({ got: request.body }));
    // A response that lasts three times the request timeout, written bit by bit.
    app.get('/long', (_request, reply) => {
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/plain' });
      let n = 0;
      const tick = setInterval(() => {
        n += 1;
        reply.raw.write(`${n}\n`);
        if (n === 6) {
          clearInterval(tick);
          reply.raw.end('done\n');
        }
      }, REQUEST_MS / 2);
    });
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(() => app.close());

  it('a login body sent a byte every 400 ms is cut with 408 long before it is complete', async () => {
    const body = JSON.stringify({ user: { email: 'slow@example.com', password: 'correct horse' } });
    const head =
      'POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
      `Content-Length: ${body.length}\r\n\r\n`;
    const { response, bodyBytesSent } = await slowRequest(url, head, body, { intervalMs: 400 });
    expect(bodyBytesSent).toBeLessThan(body.length);
    expect(response?.status).toBe(408);
    expect(response?.closed).toBe(true);
    expect(JSON.parse(response?.body ?? '{}')).toMatchObject({ code: 'REQUEST_TIMEOUT' });
  }, 30_000);

  it('headers that never end are cut the same way', async () => {
    const { response, bodyBytesSent } = await slowRequest(
      url,
      'GET /health/live HTTP/1.1\r\n',
      'X-A: b\r\n'.repeat(40),
      {
        intervalMs: 200,
      },
    );
    expect(bodyBytesSent).toBeLessThan(40 * 8);
    expect(response?.status).toBe(408);
  }, 30_000);

  it('a response that lasts longer than the request timeout is not cut', async () => {
    const res = await fetch(`${url}/long`);
    expect(await res.text()).toBe('1\n2\n3\n4\n5\n6\ndone\n');
  }, 30_000);
});
