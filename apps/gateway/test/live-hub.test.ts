/**
 * The live hub against its subscription's health, in any order: streams open and close (real HTTP
 * streams on a loopback server), the subscription is reported down and back (on a cluster a report of
 * `up` can come without a `down` before it). Whenever it is reported back, every stream open at that
 * moment (opened before or during a gap) must end with `event: reconnect` and `missed-events`, exactly
 * once; no other stream may. What a real redis-session does to the subscription is in
 * notification-stream.test.ts.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import type { FastifyBaseLogger } from 'fastify';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { LiveHub } from '../src/live/hub.ts';
import { frames } from '../src/live/rules.ts';

const MISSED = /retry: (\d+)\nevent: reconnect\ndata: \{"reason":"missed-events"\}\n\n/g;
const silent = { warn() {}, info() {}, error() {} } as unknown as FastifyBaseLogger;

let hub: LiveHub;
let server: Server;
let base: string;

beforeAll(async () => {
  hub = new LiveHub({
    heartbeatMs: 60_000,
    maxLifetimeMs: 3_600_000,
    maxStreamsPerUser: 100,
    maxStreamsPerAddress: 100,
    maxStreams: 100,
    sessionExists: async () => true,
    log: silent,
    registry: new Registry(),
  });
  server = createServer((req, res) => {
    const userId = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? 'u';
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(frames.open);
    hub.open(res, { userId, address: '127.0.0.1', sessionKey: `s:${userId}` }, false);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  hub.close();
  server.closeAllConnections();
  server.close();
});

interface Client {
  text: string;
  ended: boolean;
  controller: AbortController;
}

async function open(user: number): Promise<Client> {
  const controller = new AbortController();
  const res = await fetch(`${base}/?user=u${user}`, { signal: controller.signal });
  const client: Client = { text: '', ended: false, controller };
  void (async () => {
    const reader = (res.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: '', done: true }));
      if (done) break;
      client.text += value;
    }
    client.ended = true;
  })();
  for (let i = 0; i < 200 && !client.text.includes('retry:'); i++) await new Promise((r) => setTimeout(r, 5));
  return client;
}

const until = async (check: () => boolean, ms = 5000) => {
  for (let waited = 0; waited < ms && !check(); waited += 10) await new Promise((r) => setTimeout(r, 10));
  return check();
};

it('asks exactly the streams open when the subscription is reported back to reconnect, once', async () => {
  const step = fc.oneof(
    fc.record({ kind: fc.constant('open' as const), user: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('close' as const), pick: fc.nat() }),
    fc.record({ kind: fc.constantFrom('down' as const, 'up' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 16, size: 'max' }), async (steps) => {
      // The model: the clients still open, and which must have been told to reconnect.
      let live: Client[] = [];
      const told = new Set<Client>();
      const all: Client[] = [];
      for (const s of steps) {
        if (s.kind === 'open') {
          const client = await open(s.user);
          live.push(client);
          all.push(client);
        } else if (s.kind === 'close' && live.length > 0) {
          const client = live[s.pick % live.length] as Client;
          client.controller.abort();
          live = live.filter((c) => c !== client);
        } else if (s.kind === 'down') {
          hub.watch.down();
        } else if (s.kind === 'up') {
          hub.watch.up();
          for (const client of live) told.add(client);
          live = [];
        }
      }
      // Every client told has its frame and has ended; no other client got one, nor ended.
      expect(await until(() => [...told].every((c) => c.ended))).toBe(true);
      for (const client of all) {
        const hints = [...client.text.matchAll(MISSED)];
        expect(hints).toHaveLength(told.has(client) ? 1 : 0);
        for (const [, retry] of hints) expect(Number(retry)).toBeGreaterThanOrEqual(500);
        if (!told.has(client) && !client.controller.signal.aborted) expect(client.ended).toBe(false);
      }
      // Clean up: close what is left.
      for (const client of live) client.controller.abort();
    }),
    { numRuns: 40 },
  );
});
