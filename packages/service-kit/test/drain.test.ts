/**
 * Graceful drain (run.ts `drainAndClose`, health.ts, base.ts), on a listening server: readiness goes 503
 * at once, responses close their connections, the server keeps serving for the drain delay, then refuses
 * new connections, closes idle keep-alive ones, lets the request in flight finish, and closes its
 * resources only after that.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { base, drainAndClose, fastifyOptions } from '../src/index.ts';

interface Harness {
  app: FastifyInstance;
  url: string;
  port: number;
  /** Ends the one request to /slow that is waiting. */
  release: () => void;
  slowStarted: Promise<void>;
  /** What happened, in order. */
  events: string[];
}

async function start(): Promise<Harness> {
  const app = Fastify(fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal' }));
  await app.register(base, { service: 'test' });
  const events: string[] = [];
  let release = () => {};
  let started = () => {};
  const slowStarted = new Promise<void>((resolve) => {
    started = resolve;
  });
  app.get('/fast', async () => ({ ok: true }));
  app.get('/slow', async () => {
    started();
    await new Promise<void>((resolve) => {
      release = resolve;
    });
    events.push('slow answered');
    return { ok: true };
  });
  // Stands for Redis and PostgreSQL, which close in their plugins' onClose.
  app.addHook('onClose', async () => {
    events.push('resources closed');
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url, port: Number(new URL(url).port), release: () => release(), slowStarted, events };
}

/** One request on a raw keep-alive socket; resolves with the response head once it has arrived. */
function requestOn(socket: Socket, path: string): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\r\n\r\n') && text.includes('"ok"')) {
        socket.off('data', onData);
        resolve(text);
      }
    };
    socket.on('data', onData);
    socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n`);
  });
}

async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

describe('graceful drain', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    h?.release();
    await h?.app.close();
    h = undefined;
  });

  it('answers /health/ready 503 draining at once, and closes each connection with its response', async () => {
    h = await start();
    expect((await fetch(`${h.url}/health/ready`)).status).toBe(200);
    const before = await fetch(`${h.url}/fast`);
    expect(before.headers.get('connection')).not.toBe('close');
    h.app.health.drain();
    const ready = await fetch(`${h.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    const during = await fetch(`${h.url}/fast`);
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    expect(during.headers.get('x-atoll-draining')).toBe('1');
  });

  it('serves through the drain delay, then refuses new connections, closes idle ones and finishes the one in flight before closing resources', async () => {
    h = await start();
    const { app, url, port, events } = h;
    const idle = await openSocket(port);
    expect(await requestOn(idle, '/fast')).toMatch(/^HTTP\/1\.1 200/);
    const idleClosed = once(idle, 'close');
    const busy = await openSocket(port);
    const slowResponse = requestOn(busy, '/slow');
    await h.slowStarted;

    const closed = drainAndClose(app, 300).then(() => events.push('closed'));
    // The drain delay: still served, told to close the connection.
    const during = await fetch(`${url}/fast`);
    expect(during.status).toBe(200);
    expect(during.headers.get('connection')).toBe('close');
    expect((await fetch(`${url}/health/ready`)).status).toBe(503);

    // After it: the idle keep-alive connection is closed and new connections are refused.
    await idleClosed;
    const refused = await fetch(`${url}/fast`).then(
      () => 'answered',
      (err: Error & { cause?: { code?: string } }) => err.cause?.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    expect(events).toEqual([]);

    // The request in flight finishes, on a connection that closes with it; only then resources close.
    h.release();
    const head = await slowResponse;
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head.toLowerCase()).toContain('connection: close');
    await closed;
    expect(events).toEqual(['slow answered', 'resources closed', 'closed']);
    busy.destroy();
  });
});
