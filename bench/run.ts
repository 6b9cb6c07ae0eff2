/**
 * `pnpm bench` — atoll's hot paths measured side by side with their references, in one run, on this
 * machine, loopback only, bounded in time. Every server is a child process of this one, started the same
 * way; the load comes from this process (autocannon for HTTP, plain loops for in-process work).
 *
 * - references: a bare node:http and a bare Fastify hello-world, a Fastify proxy in front of the latter,
 *   redis-benchmark GET/SET/INCR (plain and pipelined), a raw BullMQ no-op worker, Queue.add and addBulk;
 * - atoll: cached article reads through the gateway (anonymous and signed in), a proxied pass-through,
 *   content direct (each request signed as the gateway signs it) with an L1 hit, an L2 hit and uncached,
 *   creating an article, the identity assertion (Ed25519 sign + verify against an HMAC-SHA256), an
 *   enqueue through the jobs contract, session resolution alone.
 *
 * For each: requests (or jobs) per second, p50/p99, the ratio to its reference, Redis commands and round
 * trips per request (INFO deltas on the instance the path uses), and p99 at half the maximum rate. Then the
 * peak RSS of every service. Results: bench/results/latest.{json,md,svg} (`--out DIR` elsewhere).
 *
 * Modes: full (BENCH_SECONDS per path, default 5), `--smoke` (about a second per path: the test suite
 * runs it so the harness cannot rot), `--soak` (see soak.ts), `--passwords` (login and sign-up
 * latency, Argon2id beside the old scrypt, idle and under a login flood: passwords.ts, and nothing else),
 * `--identity` (only the identity assertion's sign + verify against an HMAC, in process, no stack).
 */
import { execFile } from 'node:child_process';
import { createHmac, type KeyObject, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { IdentitySigner, IdentityVerifier } from '@atoll/identity';
import { Producer, QUEUES } from '@atoll/jobs';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import {
  createDatabase,
  freePort,
  gatewayHeaders,
  identityKeyPair,
  ownedTempDir,
  RedisServer,
  removeOwnedDir,
  repoRoot,
  ServiceProcess,
  startEmbeddedPostgres,
  startStack,
} from '@atoll/testkit/servers';
import type autocannon from 'autocannon';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  atRate,
  exactly,
  type HttpTarget,
  type LoadResult,
  measure,
  measureOps,
  opsAtRate,
} from './lib/load.ts';
import { mib, peakRss } from './lib/memory.ts';
import { perRequest } from './lib/redis-stats.ts';
import {
  halfLoadTarget,
  type Report,
  type Row,
  ratioTarget,
  roundTripTarget,
  writeReport,
} from './lib/report.ts';
import { passwordsBench } from './passwords.ts';
import { soak } from './soak.ts';

const args = process.argv.slice(2);
const mode = args.includes('--smoke') ? 'smoke' : args.includes('--soak') ? 'soak' : 'full';
const outIndex = args.indexOf('--out');
/** `--profile DIR`: every service writes a V8 CPU profile there when it stops (open in Chrome DevTools). */
const profileIndex = args.indexOf('--profile');
const profileDir = profileIndex >= 0 ? (args[profileIndex + 1] as string) : null;
const outDir = outIndex >= 0 ? (args[outIndex + 1] as string) : join(repoRoot, 'bench', 'results');
const seconds = mode === 'smoke' ? 1 : Number(process.env.BENCH_SECONDS ?? 5);
const warmupSeconds = mode === 'smoke' ? 0.3 : 1;
const halfSeconds = mode === 'smoke' ? 1 : 3;
const connections = 32;
const jobs = mode === 'smoke' ? 2000 : 20_000;
const log = { info() {}, warn() {}, error() {} };
const say = (line: string) => console.log(line);
const execFileAsync = promisify(execFile);
/**
 * Settings for the stack under load: rate limits that do not turn the load away (every request comes from
 * 127.0.0.1), the notifier's workers at the raw reference's concurrency, metrics for the soak's heap.
 */
const workerConcurrency = 16;
const METRICS_TOKEN = randomBytes(16).toString('hex');
const BENCH_ENV: Record<string, string> = {
  RATE_LIMIT_ANONYMOUS_MAX: '100000000',
  RATE_LIMIT_USER_MAX: '100000000',
  RATE_LIMIT_ADDRESS_MAX: '100000000',
  RATE_LIMIT_AUTH_MAX: '100000000',
  WORKER_CONCURRENCY: String(workerConcurrency),
  METRICS_TOKEN,
  ...(profileDir ? { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir}` } : {}),
};
const BARE = 'Fastify hello-world';

const rows: Row[] = [];
const cleanups: Array<() => Promise<void>> = [];
const started = Date.now();

/** Starts a reference server (a file in bench/refs) as a child process; `app` is whose dependencies it uses. */
async function reference(file: string, app: string, env: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const proc = ServiceProcess.spawn(
    app,
    { PORT: String(port), ...env },
    { entry: `../../bench/refs/${file}` },
  );
  cleanups.push(async () => void (await proc.stop()));
  await proc
    .waitForLog((l) => l.msg === 'listening')
    .catch((err: Error) => {
      throw new Error(`${file}: ${err.message} ${proc.stderr}`);
    });
  proc.stopRetaining();
  return `http://127.0.0.1:${port}`;
}

/**
 * One HTTP path: its maximum, then p99 at half that rate, then (with `redis`) the Redis commands and
 * round trips per request, counted over a run with a single connection so that no two requests' commands
 * share a read on the server.
 */
async function http(
  name: string,
  target: HttpTarget,
  opts: { group?: Row['group']; reference?: string; redis?: { client: Redis; instance: string } } = {},
): Promise<Row> {
  const max = await measure(target, { seconds, connections, warmupSeconds });
  const half = await atRate(target, max.rps / 2, { seconds: halfSeconds, connections });
  const redis = opts.redis
    ? await perRequest(opts.redis.client, () => exactly(target, mode === 'smoke' ? 300 : 2000))
    : undefined;
  return record({
    group: opts.group ?? 'atoll',
    name,
    unit: 'req/s',
    ...figures(max),
    p99Half: half.p99,
    ...(opts.reference ? { reference: opts.reference } : {}),
    ...(redis && opts.redis ? { redis: { instance: opts.redis.instance, ...redis.redis } } : {}),
  });
}

/** Work done in this process (Redis calls, enqueues), measured the same way. */
async function ops(
  name: string,
  op: () => Promise<unknown>,
  opts: {
    group?: Row['group'];
    unit?: Row['unit'];
    reference?: string;
    redis?: { client: Redis; instance: string };
  } = {},
): Promise<Row> {
  const max = await measureOps(op, { seconds, concurrency: connections, warmupSeconds });
  const half = await opsAtRate(op, max.rps / 2, halfSeconds);
  const redis = opts.redis
    ? await perRequest(opts.redis.client, () =>
        measureOps(op, { seconds: halfSeconds, concurrency: 1, warmupSeconds: 0 }),
      )
    : undefined;
  return record({
    group: opts.group ?? 'atoll',
    name,
    unit: opts.unit ?? 'ops/s',
    ...figures(max),
    p99Half: half.p99,
    ...(opts.reference ? { reference: opts.reference } : {}),
    ...(redis && opts.redis ? { redis: { instance: opts.redis.instance, ...redis.redis } } : {}),
  });
}

/**
 * What the identity assertion costs per request: the gateway signs one (Ed25519), the service verifies
 * it, against the same work done with a shared-secret HMAC-SHA256 (the former scheme, in which every
 * service could mint identities). Both on the same payload; one op is one sign plus one verify.
 */
async function identityAssertionRows(privateKey: KeyObject, publicKey: KeyObject): Promise<void> {
  const signer = new IdentitySigner(privateKey);
  const verifier = new IdentityVerifier({ audience: 'content', publicKeys: [publicKey] });
  const who = { userId: randomUUID(), username: 'bench', sessionId: 'x'.repeat(43), roles: ['user'] };
  const secret = randomBytes(32);
  let n = 0;
  const hmacOp = async () => {
    n += 1;
    const body = `v1.${Buffer.from(JSON.stringify({ ...who, rid: `r${n}`, url: '/api/articles/x' })).toString('base64url')}`;
    const mac = createHmac('sha256', secret).update(body).digest();
    if (!timingSafeEqual(mac, createHmac('sha256', secret).update(body).digest())) throw new Error('hmac');
  };
  const edOp = async () => {
    n += 1;
    const requestId = `r${n}`;
    const token = signer.sign({
      audience: 'content',
      method: 'GET',
      url: '/api/articles/x',
      requestId,
      clientIp: '127.0.0.1',
      identity: who,
    });
    if (!verifier.verify(token, { method: 'GET', url: '/api/articles/x', requestId }).ok)
      throw new Error('verify');
  };
  const reference = await ops(IDENTITY_REFERENCE, hmacOp, { group: 'reference' });
  const row = await ops(IDENTITY_ROW, edOp, { reference: IDENTITY_REFERENCE });
  const micros = (r: Row) => Math.round(1e6 / Math.max(r.rps, 1));
  say(
    `${''.padEnd(44)} = ${micros(row)} µs of CPU per request (sign at the gateway + verify at the service; HMAC: ${micros(reference)} µs)`,
  );
}

const IDENTITY_REFERENCE = 'identity assertion: HMAC-SHA256 sign + verify';
const IDENTITY_ROW = 'identity assertion: Ed25519 sign + verify';

const figures = ({ rps, p50, p99, requests, errors }: LoadResult) => ({ rps, p50, p99, requests, errors });

function record(row: Row): Row {
  rows.push(row);
  const names = row.redis?.byCommand
    ? ` (${Object.entries(row.redis.byCommand)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ')})`
    : '';
  const redis = row.redis ? `  redis ${row.redis.commands} cmd / ${row.redis.roundTrips} rt${names}` : '';
  const half = row.p99Half === undefined ? '' : `  p99@½ ${row.p99Half} ms`;
  say(
    `${row.name.padEnd(44)} ${String(row.rps).padStart(7)} ${row.unit}  p50 ${row.p50} ms  p99 ${row.p99} ms${half}${redis}  errors ${row.errors}`,
  );
  return row;
}

/** redis-benchmark against a server: requests per second and latencies for GET, SET, INCR. */
async function redisBenchmark(url: string, pipeline: number): Promise<void> {
  const { hostname, port, username, password } = new URL(url);
  const n = mode === 'smoke' ? 20_000 : 200_000;
  const argv = ['-h', hostname, '-p', port, '-c', String(connections), '-n', String(n)];
  // Every server requires a password (deploy/redis): the test kit's admin user here.
  if (password) argv.push('--user', decodeURIComponent(username), '-a', decodeURIComponent(password));
  const { stdout } = await execFileAsync('redis-benchmark', [
    ...argv,
    '-P',
    String(pipeline),
    '-t',
    'get,set,incr',
    '--csv',
  ]);
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
  for (const line of stdout.trim().split('\n').slice(1)) {
    const cells = line.split(',').map((c) => c.replaceAll('"', ''));
    record({
      group: 'reference',
      name: `redis-benchmark ${cells[0]}${pipeline > 1 ? ` (pipelined ×${pipeline})` : ''}`,
      unit: 'ops/s',
      rps: Math.round(Number(cells[1])),
      p50: Number(cells[4]),
      p99: Number(cells[6]),
      requests: n,
      errors: 0,
    });
  }
}

/**
 * Drains `count` jobs from a paused queue once resumed: the jobs per second a worker reaches, and the
 * p50/p99 of each job's time in the worker (finishedOn − processedOn) over the jobs still kept.
 */
async function drain(queue: Queue, count: number, fill: () => Promise<void>): Promise<LoadResult> {
  await queue.pause();
  await fill();
  const t0 = performance.now();
  await queue.resume();
  for (;;) {
    const c = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    if (Object.values(c).reduce((a: number, b) => a + Number(b), 0) === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const elapsed = (performance.now() - t0) / 1000;
  const failed = await queue.getJobCountByTypes('failed');
  const done = await queue.getJobs(['completed'], 0, 999);
  const times = done
    .map((j) => (j.finishedOn ?? 0) - (j.processedOn ?? 0))
    .filter((t) => t >= 0)
    .sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? 0;
  return { rps: Math.round(count / elapsed), p50: at(0.5), p99: at(0.99), requests: count, errors: failed };
}

if (args.includes('--passwords')) {
  // Only the password paths (their own stacks), then stop: see passwords.ts.
  await passwordsBench({ outDir, seconds: mode === 'smoke' ? 1 : seconds, say });
  process.exit(0);
}

if (args.includes('--identity')) {
  // Just the identity assertion's cost, in this process: no stack, a few seconds.
  say(`atoll bench (identity): ${seconds} s per path, concurrency ${connections}, Node ${process.version}\n`);
  const keys = identityKeyPair();
  await identityAssertionRows(keys.privateKey, keys.publicKey);
  process.exit(0);
}

try {
  say(`atoll bench (${mode}): ${seconds} s per path, ${connections} connections, Node ${process.version}\n`);
  // ---- atoll, as the local stack runs it, with warn-level logs as a busy production instance might.
  const dataDir = await ownedTempDir('bench');
  cleanups.push(async () => removeOwnedDir(dataDir));
  const identity = identityKeyPair();
  const keyPrefix = `b${randomBytes(3).toString('hex')}`;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const pgDir = await ownedTempDir('bench-pg');
    const pg = await startEmbeddedPostgres({ dir: pgDir });
    cleanups.push(async () => {
      await pg.stop();
      removeOwnedDir(pgDir);
    });
    adminUrl = pg.adminUrl;
  }
  const database = await createDatabase(adminUrl, 'bench');
  cleanups.push(() => database.drop());
  const stack = await startStack({
    dataDir,
    identity,
    keyPrefix,
    databaseUrl: database.url,
    env: { LOG_LEVEL: 'warn', ...BENCH_ENV },
  });
  cleanups.push(() => stack.stop());
  const contentEnv = stack.envOf('content');
  const startContent = async (extra: Record<string, string>) => {
    const proc = await ServiceProcess.start('content', { ...contentEnv, PORT: '0', ...extra });
    proc.stopRetaining();
    cleanups.push(async () => void (await proc.stop()));
    return proc;
  };
  // Content measured directly on instances of their own (the stack's serves the gateway's paths).
  const contentL1 = await startContent({});
  const contentL2 = await startContent({ CACHE_L1_MAX_ENTRIES: '1' });
  const contentUncached = await startContent({ CACHE_ENABLED: 'false' });
  const [cacheRedis, sessionRedis] = await Promise.all(
    (['cache', 'session'] as const).map((role) =>
      connectRedis({ url: stack.redis[role].url, role, use: 'producer', name: `bench:${role}`, log }),
    ),
  );
  cleanups.push(async () => {
    await closeRedis(cacheRedis as Redis);
    await closeRedis(sessionRedis as Redis);
  });

  // A user and two articles, through the gateway.
  const gateway = stack.gatewayUrl;
  const post = async (path: string, body: unknown, token?: string) => {
    const res = await fetch(`${gateway}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Token ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as { user?: { token: string }; article?: { slug: string } };
  };
  const token = (
    await post('/api/users', {
      user: { username: 'bench', email: 'bench@example.com', password: 'correct horse battery' },
    })
  ).user?.token as string;
  const article = { description: 'A typical article', body: 'x'.repeat(2000), tagList: ['bench', 'cache'] };
  const slugs: string[] = [];
  for (const title of ['Benchmark one', 'Benchmark two'])
    slugs.push(
      (await post('/api/articles', { article: { title, ...article } }, token)).article?.slug as string,
    );
  const read = (slug: string) => ({ path: `/api/articles/${slug}` });
  /**
   * Content answers only requests the gateway signed, each once: the load signs every request it sends
   * straight to content, as the gateway would (which costs the load generator a signature per request).
   */
  const signedRead = (slug: string) => ({
    ...read(slug),
    setupRequest: (req: autocannon.Request) => {
      const url = req.path ?? '/';
      req.headers = {
        ...req.headers,
        ...gatewayHeaders(identity, 'content', { method: req.method ?? 'GET', url }),
      };
      return req;
    },
  });
  const auth = { authorization: `Token ${token}` };

  // Every path and its reference (the soak mode skips them and measures memory over time instead).
  const measureAll = async () => {
    // ---- references
    const nodeHttp = await reference('node-http.ts', 'content');
    const bare = await reference('bare-fastify.ts', 'content');
    const proxy = await reference('fastify-proxy.ts', 'gateway', { UPSTREAM: bare });
    await http('node:http hello-world', { url: nodeHttp, requests: [{ path: '/' }] }, { group: 'reference' });
    await http(BARE, { url: bare, requests: [{ path: '/' }] }, { group: 'reference' });
    await http(
      'Fastify, the same 2.5 KB bytes as an article',
      { url: bare, requests: [{ path: '/article' }] },
      { group: 'reference', reference: BARE },
    );
    await http(
      'Fastify proxy → Fastify hello-world',
      { url: proxy, requests: [{ path: '/' }] },
      {
        group: 'reference',
        reference: BARE,
      },
    );
    const refRedis = await RedisServer.start('cache');
    const refQueue = await RedisServer.start('queue');
    cleanups.push(
      () => refRedis.dispose(),
      () => refQueue.dispose(),
    );
    await redisBenchmark(refRedis.url, 1);
    await redisBenchmark(refRedis.url, 16);

    // ---- atoll over HTTP
    await http(
      'gateway: anonymous cached read',
      { url: gateway, requests: [read(slugs[0] as string)] },
      {
        reference: BARE,
        redis: { client: sessionRedis as Redis, instance: 'session' },
      },
    );
    await http(
      'gateway: authenticated cached read',
      { url: gateway, requests: [{ ...read(slugs[0] as string), headers: auth }] },
      { reference: BARE, redis: { client: sessionRedis as Redis, instance: 'session' } },
    );
    await http(
      'gateway: proxied pass-through (GET /api/tags)',
      { url: gateway, requests: [{ path: '/api/tags' }] },
      {
        reference: BARE,
      },
    );
    await http(
      'content: L1 hit',
      { url: contentL1.url, requests: [signedRead(slugs[0] as string)] },
      {
        reference: BARE,
        redis: { client: cacheRedis as Redis, instance: 'cache' },
      },
    );
    await http(
      'content: L2 hit',
      { url: contentL2.url, requests: slugs.map(signedRead) },
      {
        reference: BARE,
        redis: { client: cacheRedis as Redis, instance: 'cache' },
      },
    );
    await http(
      'content: uncached',
      { url: contentUncached.url, requests: slugs.map(signedRead) },
      {
        reference: BARE,
      },
    );
    await http(
      'gateway: create article',
      {
        url: gateway,
        requests: [
          {
            path: '/api/articles',
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: JSON.stringify({ article: { title: 'Written under load', ...article } }),
          },
        ],
      },
      { reference: BARE },
    );

    // ---- in this process: the identity assertion, session resolution, enqueues, workers
    await identityAssertionRows(identity.privateKey, identity.publicKey);
    const keys = createKeys(keyPrefix);
    await ops('redis GET (ioredis, one client)', () => (sessionRedis as Redis).get('bench:nothing'), {
      group: 'reference',
      redis: { client: sessionRedis as Redis, instance: 'session' },
    });
    const sessions = new SessionStore(sessionRedis as Redis, keys);
    await ops('session resolution alone', () => sessions.resolve(token), {
      reference: 'redis GET (ioredis, one client)',
      redis: { client: sessionRedis as Redis, instance: 'session' },
    });

    const queueClient = await connectRedis({
      url: refQueue.url,
      role: 'queue',
      use: 'producer',
      name: 'bench:queue',
      log,
    });
    cleanups.push(async () => closeRedis(queueClient));
    const raw = new Queue('bench-raw', { connection: queueClient, prefix: '{benchraw}' });
    cleanups.push(() => raw.close());
    const payload = {
      v: 1 as const,
      actorId: randomUUID(),
      actorUsername: 'bench',
      recipientId: randomUUID(),
      occurredAt: new Date().toISOString(),
    };
    await ops('BullMQ Queue.add (raw)', () => raw.add('follow', payload, { removeOnComplete: true }), {
      group: 'reference',
      unit: 'jobs/s',
    });
    const producer = new Producer(queueClient, createKeys('benchq'));
    cleanups.push(() => producer.close());
    await ops(
      'enqueue through the jobs contract',
      () => producer.enqueue('notifications', 'follow', payload),
      {
        unit: 'jobs/s',
        reference: 'BullMQ Queue.add (raw)',
      },
    );
    const bulk = Array.from({ length: 100 }, () => ({
      name: 'follow',
      data: payload,
      opts: { removeOnComplete: { count: 1000 } },
    }));
    // Jobs per second through addBulk of 100 (p50/p99 are per addBulk call).
    const bulkLoad = await measureOps(() => raw.addBulk(bulk), {
      seconds,
      concurrency: connections,
      warmupSeconds,
    });
    record({
      group: 'reference',
      name: 'BullMQ addBulk ×100 (raw), in jobs',
      unit: 'jobs/s',
      ...figures(bulkLoad),
      rps: bulkLoad.rps * 100,
    });

    await raw.obliterate({ force: true });
    const worker = ServiceProcess.spawn(
      'content',
      {
        REDIS_URL: refQueue.url,
        QUEUE: 'bench-raw',
        PREFIX: '{benchraw}',
        CONCURRENCY: String(workerConcurrency),
      },
      { entry: '../../bench/refs/bullmq-worker.ts' },
    );
    cleanups.push(async () => void (await worker.stop()));
    await worker.waitForLog((l) => l.msg === 'listening');
    const drained = await drain(raw, jobs, async () => {
      for (let i = 0; i < jobs; i += bulk.length) await raw.addBulk(bulk);
    });
    const rawName = `raw BullMQ no-op worker (concurrency ${workerConcurrency})`;
    record({ group: 'reference', name: rawName, unit: 'jobs/s', ...drained });

    // The notifier's fan-out on the stack's queue: a row, a live event, the recipient's preferences; the
    // recipients have no address, so no email goes out (the no-op transport).
    const stackQueue = await connectRedis({
      url: stack.redis.queue.url,
      role: 'queue',
      use: 'producer',
      name: 'bench:stack-queue',
      log,
    });
    cleanups.push(async () => closeRedis(stackQueue));
    const notifications = new Queue('notifications', { connection: stackQueue, prefix: keys.bullPrefix() });
    cleanups.push(() => notifications.close());
    const notified = await drain(notifications, jobs, async () => {
      for (let i = 0; i < jobs; i += 100) {
        await notifications.addBulk(
          Array.from({ length: 100 }, () => ({
            name: 'follow',
            data: { ...payload, recipientId: randomUUID() },
            opts: { ...QUEUES.notifications.options, jobId: randomUUID() },
          })),
        );
      }
    });
    record({
      group: 'atoll',
      name: `notifier processing (concurrency ${workerConcurrency})`,
      unit: 'jobs/s',
      reference: rawName,
      ...notified,
    });
  };
  if (mode !== 'soak') await measureAll();

  // ---- memory: the peak resident set of every service over the run
  const memory = Object.fromEntries(
    [
      ...Object.entries(stack.services).map(([name, proc]) => [name, proc.child.pid] as const),
      ['content (direct, L1)', contentL1.child.pid] as const,
      ['content (L1 of 1)', contentL2.child.pid] as const,
      ['content (uncached)', contentUncached.child.pid] as const,
    ].map(([name, pid]) => [name, { pid: pid ?? null, peakRssMiB: pid ? mib(peakRss(pid)) : null }]),
  );

  const report: Report = {
    when: new Date().toISOString(),
    mode,
    seconds,
    connections,
    node: process.version,
    cpus: cpus().length,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    rows,
    targets: [
      ...ratioTarget(rows, 'gateway: proxied pass-through (GET /api/tags)', BARE, '≥', 0.5),
      ...ratioTarget(rows, 'gateway: authenticated cached read', BARE, '≥', 0.35),
      ...ratioTarget(rows, 'content: L1 hit', BARE, '≥', 0.85),
      ...ratioTarget(rows, 'content: L2 hit', BARE, '≥', 0.6),
      ...ratioTarget(rows, 'content: L2 hit', 'content: uncached', '≥', 2),
      ...ratioTarget(
        rows,
        `notifier processing (concurrency ${workerConcurrency})`,
        `raw BullMQ no-op worker (concurrency ${workerConcurrency})`,
        '≥',
        0.7,
      ),
      ...roundTripTarget(rows, 'gateway: authenticated cached read', 1),
      ...roundTripTarget(rows, 'content: L1 hit', 0),
      ...rows
        .filter((r) => r.group === 'atoll' && r.unit === 'req/s' && r.p99Half !== undefined)
        .flatMap((r) => halfLoadTarget(rows, r.name, BARE, 3)),
    ],
    memory,
  };
  if (mode === 'soak')
    report.soak = await soak({
      stack,
      token,
      slug: slugs[0] as string,
      keyPrefix,
      metricsToken: METRICS_TOKEN,
      say,
    });
  const written = writeReport(report, outDir, mode === 'soak' ? 'soak' : 'latest');
  say(`\n${written.markdown}\n\nwritten to ${written.files.join(', ')}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
process.exit(0);
