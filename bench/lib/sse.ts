/**
 * Server-sent events fan-out, measured from this process: `streams` clients hold a stream each, then
 * `events` times one event is published and every client's arrival time is taken (from the publish
 * request being sent). Also the server's memory per stream held (after a GC, before and after opening).
 */
import { type ClientRequest, request } from 'node:http';
import { percentiles } from './load.ts';

export interface FanOutResult {
  streams: number;
  events: number;
  /** Time until one client has the event (ms), over every delivery. */
  delivery: { p50: number; p99: number };
  /** Time until every client has the event (ms), over the events. */
  allDelivered: { p50: number; p99: number };
  /** The server's growth per stream held (KiB). */
  perStreamKiB: { rss: number; heap: number };
}

interface Memory {
  streams: number;
  rss: number;
  heapUsed: number;
}

async function call(url: string, method = 'GET'): Promise<string> {
  const res = await fetch(url, { method });
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status}`);
  return res.text();
}

/** One client: resolves once the stream is open; `onEvent` is called at each `data:` chunk. */
function subscribe(url: string, onEvent: () => void): Promise<ClientRequest> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/events`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (chunk.startsWith(': open')) resolve(req);
        else if (chunk.includes('data:')) onEvent();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

export async function fanOut(url: string, streams: number, events: number): Promise<FanOutResult> {
  const before = JSON.parse(await call(`${url}/memory`)) as Memory;
  let publishedAt = 0;
  let pending = 0;
  let allArrived: () => void = () => undefined;
  const deliveries: number[] = [];
  const onEvent = () => {
    deliveries.push(performance.now() - publishedAt);
    pending -= 1;
    if (pending === 0) allArrived();
  };
  const clients: ClientRequest[] = [];
  // Opened in batches, so that the server's accept queue is not the thing measured.
  for (let i = 0; i < streams; i += 100)
    clients.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(100, streams - i) }, () => subscribe(url, onEvent)),
      )),
    );
  const after = JSON.parse(await call(`${url}/memory`)) as Memory;
  if (after.streams < streams) throw new Error(`only ${after.streams} of ${streams} streams held`);
  const everyone: number[] = [];
  try {
    for (let e = 0; e < events; e += 1) {
      pending = streams;
      const arrived = new Promise<void>((resolve) => {
        allArrived = resolve;
      });
      publishedAt = performance.now();
      await call(`${url}/publish`, 'POST');
      await arrived;
      everyone.push(performance.now() - publishedAt);
    }
  } finally {
    for (const client of clients) client.destroy();
  }
  const kib = (bytes: number) => Math.round((bytes / streams / 1024) * 10) / 10;
  return {
    streams,
    events,
    delivery: percentiles(deliveries),
    allDelivered: percentiles(everyone),
    perStreamKiB: { rss: kib(after.rss - before.rss), heap: kib(after.heapUsed - before.heapUsed) },
  };
}
