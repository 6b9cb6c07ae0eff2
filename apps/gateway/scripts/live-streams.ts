/**
 * The gateway's live streams at scale, on this machine: a gateway (buildApp, in a child process run with
 * the service's Node options and --expose-gc, so the memory read is the server's alone) on a real
 * redis-session holds `--streams N` streams, one user each; then `--events E` times one notification per
 * user is published (a broadcast) and every stream's arrival time is taken. Prints the memory per stream
 * once the streams are open and again after the broadcasts: the RSS when asked (`rssAsked`: what V8 still
 * keeps from the work just done), then once the gateway has run its own collection at rest
 * (`startRestGc`, as every service runs it; `rssAtRest`; `collectedAtRest` says for each reading whether
 * it had run), then, after a full GC, the
 * RSS, V8's heap in use, what V8 holds in physical memory for its heap (so growth outside V8 shows as
 * RSS beyond it) and the external memory V8 knows of; and the delivery p50/p99.
 *
 * Then the caps, with the N streams still open: the gateway runs with a per-address cap of N and a
 * global cap of N + 1, so one more stream from 127.0.0.1 gets 429, one from 127.0.0.2 is let in (200),
 * and one from 127.0.0.3 gets 503 (`caps`; the script exits with 1 when any answer differs).
 *
 *   node --conditions=atoll-source scripts/live-streams.ts --streams 2000 --events 5   (in apps/gateway)
 */
import { fork } from 'node:child_process';
import { type ClientRequest, request } from 'node:http';
import { getHeapStatistics } from 'node:v8';
import { encodeLiveMessage } from '@atoll/events';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { REST_GC_DEFAULTS, startRestGc } from '@atoll/service-kit';
import { SessionStore } from '@atoll/session-store';
import { identityKeyPair, RedisServer, SERVICE_ENV, SERVICE_NODE_OPTIONS } from '@atoll/testkit';
import { liveNotification } from '../test/helpers.ts';

interface Memory {
  /** When asked, before the gateway's collection at rest: what V8 still keeps from the work just done. */
  rssAsked: number;
  /** After the gateway's own collection at rest, before the full GC the other figures follow. */
  rssAtRest: number;
  /** Whether the gateway ran its collection at rest before `rssAtRest` was read. */
  collected: boolean;
  rss: number;
  heapUsed: number;
  /** What V8 holds in physical memory for its heap, free space included. */
  v8Physical: number;
  /** Memory outside V8's heap that V8 knows of: Buffers and other ArrayBuffers' bytes. */
  external: number;
}

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};

function percentiles(values: number[]) {
  values.sort((a, b) => a - b);
  const at = (q: number) => values[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

if (process.argv.includes('--child')) await child();
else await parent();

/**
 * The gateway, as main.ts builds and runs it (its collection at rest included); answers `memory` over
 * IPC once that collection has run, or three of its intervals passed without one (the RSS had not grown
 * enough since the last), and after a full GC.
 */
async function child() {
  const { buildApp } = await import('../src/app.ts');
  const { loadConfig } = await import('../src/config.ts');
  const app = await buildApp(loadConfig(process.env));
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  let restCollections = 0;
  startRestGc({
    log: {
      info: (_obj, msg) => {
        if (msg === 'full collection at rest') restCollections += 1;
      },
    },
  });
  const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);
  process.on('message', async (m: string) => {
    if (m === 'memory') {
      const rssAsked = process.memoryUsage.rss();
      const seen = restCollections;
      const until = Date.now() + 3 * REST_GC_DEFAULTS.intervalMs;
      while (restCollections === seen && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      const rssAtRest = process.memoryUsage.rss();
      for (let i = 0; i < 3; i += 1) gc();
      const { rss, heapUsed, external } = process.memoryUsage();
      process.send?.({
        rssAsked,
        rssAtRest,
        collected: restCollections > seen,
        rss,
        heapUsed,
        external,
        v8Physical: getHeapStatistics().total_physical_size,
      });
    } else if (m === 'close') {
      await app.close();
      process.exit(0);
    }
  });
  process.send?.({ url });
}

async function parent() {
  const streams = arg('streams', 2000);
  const events = arg('events', 5);
  const redis = await RedisServer.start('session');
  const keyPrefix = 'bench';
  const keys = identityKeyPair();
  const gateway = fork(new URL(import.meta.url).pathname, ['--child'], {
    // As the service runs (SERVICE_NODE_OPTIONS and SERVICE_ENV shape its RSS).
    execArgv: ['--expose-gc', '--conditions=atoll-source', ...SERVICE_NODE_OPTIONS.split(' ')],
    env: {
      ...process.env,
      ...SERVICE_ENV,
      LOG_LEVEL: 'error',
      IDENTITY_PRIVATE_KEY: keys.privateKeyText,
      REDIS_SESSION_URL: redis.url,
      REDIS_KEY_PREFIX: keyPrefix,
      AUTH_URL: 'http://127.0.0.1:9',
      CONTENT_URL: 'http://127.0.0.1:9',
      NOTIFIER_URL: 'http://127.0.0.1:9',
      // The caps checked at the end: the streams fill the per-address cap, one more address the global.
      SSE_MAX_STREAMS: String(streams + 1),
      SSE_MAX_STREAMS_PER_ADDRESS: String(streams),
      RATE_LIMIT_ADDRESS_MAX: String(streams * 2),
    },
  });
  const next = () => new Promise<Record<string, unknown>>((resolve) => gateway.once('message', resolve));
  const { url } = (await next()) as { url: string };
  const memory = async () => {
    gateway.send('memory');
    return (await next()) as unknown as Memory;
  };
  const client = await connectRedis({
    url: redis.url,
    role: 'session',
    use: 'producer',
    name: 'bench',
    log: console,
  });
  const sessions = new SessionStore(client, createKeys(keyPrefix));
  const tokens: string[] = [];
  for (let i = 0; i < streams + 3; i += 1)
    tokens.push((await sessions.create({ userId: `u${i}`, username: `u${i}`, roles: ['user'] })).token);

  let publishedAt = 0;
  let pending = 0;
  let allArrived = () => {};
  const deliveries: number[] = [];
  const onEvent = () => {
    deliveries.push(performance.now() - publishedAt);
    pending -= 1;
    if (pending === 0) allArrived();
  };
  const open = (token: string) =>
    new Promise<ClientRequest>((resolve, reject) => {
      const req = request(
        `${url}/api/notifications/stream`,
        { agent: false, headers: { authorization: `Token ${token}` } },
        (res) => {
          if (res.statusCode !== 200) reject(new Error(`stream: ${res.statusCode}`));
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (chunk.startsWith('retry:')) resolve(req);
            else if (chunk.includes('event: notification')) onEvent();
          });
        },
      );
      req.on('error', reject);
      req.end();
    });

  const before = await memory();
  const clients: ClientRequest[] = [];
  for (let i = 0; i < streams; i += 100)
    clients.push(...(await Promise.all(tokens.slice(i, i + 100).map(open))));
  const after = await memory();

  const everyone: number[] = [];
  for (let e = 1; e <= events; e += 1) {
    pending = streams;
    const arrived = new Promise<void>((resolve) => {
      allArrived = resolve;
    });
    const channel = createKeys(keyPrefix).liveNotifications();
    const messages = Array.from({ length: streams }, (_, i) =>
      encodeLiveMessage(`u${i}`, liveNotification(e, new Date().toISOString())),
    );
    publishedAt = performance.now();
    const pipeline = client.pipeline();
    for (const message of messages) pipeline.publish(channel, message);
    await pipeline.exec();
    await arrived;
    everyone.push(performance.now() - publishedAt);
  }
  const held = await memory();
  if (process.argv.includes('--raw')) console.log(JSON.stringify({ before, after, held }));

  /** The status a new stream from `localAddress` is answered with; the request is kept open. */
  const answer = (token: string, localAddress: string) =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        `${url}/api/notifications/stream`,
        { agent: false, localAddress, headers: { authorization: `Token ${token}` } },
        (res) => {
          clients.push(req);
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
  const caps = {
    sameAddress: await answer(tokens[streams] as string, '127.0.0.1'),
    otherAddress: await answer(tokens[streams + 1] as string, '127.0.0.2'),
    overGlobal: await answer(tokens[streams + 2] as string, '127.0.0.3'),
  };
  const capsHold = caps.sameAddress === 429 && caps.otherAddress === 200 && caps.overGlobal === 503;
  if (!capsHold) process.exitCode = 1;
  const kib = (bytes: number) => Math.round((bytes / streams / 1024) * 10) / 10;
  const d = percentiles(deliveries);
  const all = percentiles(everyone);
  console.log(
    JSON.stringify({
      streams,
      events,
      perStreamKiB: {
        rssAsked: kib(after.rssAsked - before.rssAtRest),
        rssAtRest: kib(after.rssAtRest - before.rssAtRest),
        rss: kib(after.rss - before.rss),
        heap: kib(after.heapUsed - before.heapUsed),
        v8Physical: kib(after.v8Physical - before.v8Physical),
        external: kib(after.external - before.external),
      },
      perStreamKiBAfterEvents: {
        rssAsked: kib(held.rssAsked - before.rssAtRest),
        rssAtRest: kib(held.rssAtRest - before.rssAtRest),
        rss: kib(held.rss - before.rss),
        heap: kib(held.heapUsed - before.heapUsed),
        v8Physical: kib(held.v8Physical - before.v8Physical),
        external: kib(held.external - before.external),
      },
      collectedAtRest: [before.collected, after.collected, held.collected],
      deliveryMs: { p50: Math.round(d.p50), p99: Math.round(d.p99) },
      allDeliveredMs: { p50: Math.round(all.p50), p99: Math.round(all.p99) },
      caps,
      capsHold,
    }),
  );
  for (const c of clients) c.destroy();
  gateway.send('close');
  await new Promise((r) => gateway.once('exit', r));
  await closeRedis(client);
  await redis.dispose();
}
