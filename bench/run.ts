/**
 * `pnpm bench` — atoll's hot paths measured side by side with their references, in one run, on this
 * machine, loopback only, bounded in time. Every server is a child process of this one, started the same
 * way; the load comes from this process (autocannon for HTTP, plain loops for in-process work).
 *
 * What is compared with what, and the targets and physical bounds, are one table: targets.ts. Each
 * comparison runs in interleaved rounds (reference, path, reference, path, …, each pair back to back) and
 * is reported as the median of the per-round ratios with their spread; a median above its physical bound
 * is reported as suspect, never as met. HTTP rates count only 2xx answers of the expected body size
 * (lib/load.ts); the rest are counted as errors, by kind.
 *
 * Besides: p99 at half the maximum rate, Redis commands and round trips per request (INFO deltas on the
 * instance the path uses), redis-benchmark, BullMQ addBulk, a raw SSE fan-out, and the peak RSS of every
 * service. Results: bench/results/latest.{json,md,svg} (`--out DIR` elsewhere).
 *
 * Options: `--rounds N` (default 3), `--duration S` seconds per side per round (default 3), `--only TEXT`
 * (only the comparisons whose path or reference contains TEXT), `--profile [DIR]` (CPU profiles per
 * service, summed in profile.md), `--node-options "<flags>"` (Node/V8 flags for the stack's services), `--source` (the services from their
 * TypeScript sources rather than compiled, the default). Modes: full, `--smoke` (3 rounds of
 * 0.4 s: the test suite runs it so the harness cannot rot), `--soak` (see soak.ts), `--passwords`
 * (passwords.ts, and nothing else), `--identity` (only the identity assertion's sign + verify, in
 * process, no stack).
 */
import { execFile } from 'node:child_process';
import { createHmac, type KeyObject, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
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
  gatewayHeadersBatch,
  identityKeyPair,
  ownedTempDir,
  RedisServer,
  removeOwnedDir,
  repoRoot,
  ServiceProcess,
  startEmbeddedPostgres,
  startStack,
} from '@atoll/testkit/servers';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  atRate,
  exactly,
  type HttpRequest,
  type HttpTarget,
  type LoadResult,
  measure,
  measureOps,
  opsAtRate,
} from './lib/load.ts';
import { mib, peakRss, rss, rssAnon, rssFile, v8Memory } from './lib/memory.ts';
import { PresignedRequest } from './lib/presigned.ts';
import { profileMarkdown, summarizeDir } from './lib/profile.ts';
import { perRequest } from './lib/redis-stats.ts';
import {
  check,
  formatRatio,
  halfLoadCheck,
  type IdleDetail,
  type Report,
  type Row,
  roundTripCheck,
  writeReport,
} from './lib/report.ts';
import { interleave, spread } from './lib/rounds.ts';
import { type FanOutResult, fanOut } from './lib/sse.ts';
import { type Judged, judge, type Measured } from './lib/verdict.ts';
import { passwordsBench } from './passwords.ts';
import { soak } from './soak.ts';
import { COMPARISONS, type Comparison, NAMES, WORKER_CONCURRENCY } from './targets.ts';

const args = process.argv.slice(2);
/** The value given after `--name`, if any. */
const option = (name: string): string | undefined => {
  const index = args.indexOf(`--${name}`);
  return index >= 0 ? args[index + 1] : undefined;
};
const mode = args.includes('--smoke') ? 'smoke' : args.includes('--soak') ? 'soak' : 'full';
/** `--profile DIR`: every service writes a V8 CPU profile there when it stops (open in Chrome DevTools). */
// `--profile [DIR]`: every service with --cpu-prof, one folder each under DIR (default
// .atoll/bench-profile), summed into profile.md beside the results once they have stopped.
const profileArg = option('profile');
const profileDir = args.includes('--profile')
  ? profileArg && !profileArg.startsWith('--')
    ? profileArg
    : join(repoRoot, '.atoll', 'bench-profile')
  : null;
if (profileDir) rmSync(profileDir, { recursive: true, force: true });
// `--node-options "<flags>"`: Node/V8 flags for every service of the stack (not the references), to
// measure what a setting (a heap size, a young generation size) costs and saves.
const nodeOptions = option('node-options');
// The services run as they are deployed, compiled (`pnpm build` first, which turbo skips when nothing
// changed); `--source` runs them from their TypeScript sources instead, as `npm start` does.
const build = args.includes('--source') ? 'source' : 'dist';
const outDir = option('out') ?? join(repoRoot, 'bench', 'results');
const rounds = Number(option('rounds') ?? 3);
const seconds = Number(option('duration') ?? (mode === 'smoke' ? 0.4 : 3));
if (!(Number.isInteger(rounds) && rounds >= 3) || !(seconds > 0))
  throw new Error('--rounds takes a whole number of at least 3, --duration a number of seconds above 0');
const only = option('only');
/** A warm-up before a subject's first measurement only: the later rounds find it warm. */
const warmupSeconds = mode === 'smoke' ? 0.2 : 1;
/** How long the stack is left alone before its idle memory is read. */
const idleSeconds = mode === 'smoke' ? 1 : 15;
/** The whole stack's four services, idle: at most this many MiB of RSS. */
const IDLE_STACK_MIB = 400;
const halfSeconds = mode === 'smoke' ? 0.4 : 3;
/**
 * Concurrent connections (or loops) per measurement. The smoke run uses few: each connection waits for
 * its answer, so with 32 a write at 35/s takes about a second and a 0.4 s round would see none complete.
 */
const connections = mode === 'smoke' ? 4 : 32;
/** Jobs drained per round by the raw worker and by the notifier. */
const jobs = mode === 'smoke' ? 300 : 5000;
const sse = mode === 'smoke' ? { streams: 50, events: 3 } : { streams: 2000, events: 20 };
const log = { info() {}, warn() {}, error() {} };
const say = (line: string) => console.log(line);
/** Seconds since the start, to show where a run spends its time. */
const elapsed = () => `[${Math.round((Date.now() - started) / 1000)} s]`;
const execFileAsync = promisify(execFile);
/**
 * Settings for the stack under load: rate limits that do not turn the load away (every request comes from
 * 127.0.0.1), cache entries that do not expire during the run, the notifier's workers at the raw
 * reference's concurrency, metrics for the soak's heap.
 */
const METRICS_TOKEN = randomBytes(16).toString('hex');
/**
 * Assertions per signature for the requests sent straight to content: fewer than the gateway made under
 * the gateway rows at 32 connections (5.7–5.8 per signature in three targeted runs, 5.55 over a full run, on 2026-12-06; the report gives
 * each run's figure).
 */
const ASSERTION_BATCH = 4;
const BENCH_ENV: Record<string, string> = {
  RATE_LIMIT_ANONYMOUS_MAX: '100000000',
  RATE_LIMIT_USER_MAX: '100000000',
  RATE_LIMIT_ADDRESS_MAX: '100000000',
  RATE_LIMIT_AUTH_MAX: '100000000',
  // Cached entries stay fresh in Redis for the whole run, so that a path measured as a cache hit is one:
  // with the default 60 s, an entry that expired in the middle of a round was loaded from PostgreSQL
  // again inside the L1 hit's measurement (its L1 copy still lives 60 s at most, then one GET).
  CACHE_TTL_S: '3600',
  WORKER_CONCURRENCY: String(WORKER_CONCURRENCY),
  METRICS_TOKEN,
};
/** NODE_OPTIONS that profile one service into its own folder (nothing without --profile). */
const profiled = (service: string): Record<string, string> => {
  const flags = [
    ...(nodeOptions ? [nodeOptions] : []),
    ...(profileDir ? [`--cpu-prof --cpu-prof-dir=${join(profileDir, service)}`] : []),
  ];
  return flags.length > 0 ? { NODE_OPTIONS: flags.join(' ') } : {};
};

const rows: Row[] = [];
const cleanups: Array<() => Promise<void>> = [];
const started = Date.now();

/** Starts a reference server (a file in bench/refs) as a child process; `app` is whose dependencies it uses. */
async function reference(file: string, app: string, env: Record<string, string> = {}): Promise<string> {
  const port = await freePort();
  const proc = ServiceProcess.spawn(
    app,
    { PORT: String(port), ...env },
    // The references run with Node's defaults: nothing of atoll's, its settings included.
    { entry: `../../bench/refs/${file}`, nodeOptions: '', serviceEnv: {} },
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
 * Something measured at full speed, once per round: an HTTP path, work in this process, a queue drained.
 * HTTP subjects also get p99 at half their median rate, and (with `redis`) Redis costs per request.
 */
interface Subject {
  group: Row['group'];
  unit: Row['unit'];
  /** One measurement; `warm` is true for the subject's first, which warms up first. */
  measure: (warm: boolean) => Promise<LoadResult>;
  http?: HttpTarget;
  op?: () => Promise<unknown>;
  redis?: { client: Redis; instance: string };
}

const subjects = new Map<string, Subject>();
/** Every measurement of each subject, over all the comparisons it takes part in. */
const measured = new Map<string, LoadResult[]>();

function httpSubject(
  name: string,
  target: HttpTarget,
  opts: { group?: Row['group']; redis?: Subject['redis'] } = {},
): void {
  subjects.set(name, {
    group: opts.group ?? 'atoll',
    unit: 'req/s',
    measure: (warm) => measure(target, { seconds, connections, warmupSeconds: warm ? warmupSeconds : 0 }),
    http: target,
    ...(opts.redis ? { redis: opts.redis } : {}),
  });
}

function opsSubject(
  name: string,
  op: () => Promise<unknown>,
  opts: { group?: Row['group']; unit?: Row['unit']; redis?: Subject['redis'] } = {},
): void {
  subjects.set(name, {
    group: opts.group ?? 'atoll',
    unit: opts.unit ?? 'ops/s',
    measure: (warm) =>
      measureOps(op, { seconds, concurrency: connections, warmupSeconds: warm ? warmupSeconds : 0 }),
    op,
    ...(opts.redis ? { redis: opts.redis } : {}),
  });
}

async function measureSubject(name: string): Promise<LoadResult> {
  const subject = subjects.get(name);
  if (!subject) throw new Error(`targets.ts names "${name}", which the bench does not measure`);
  const result = await subject.measure(!measured.has(name));
  measured.set(name, [...(measured.get(name) ?? []), result]);
  const errors = result.errors ? `  errors ${result.errors} ${JSON.stringify(result.rejected ?? {})}` : '';
  say(`  ${name.padEnd(52)} ${String(result.rps).padStart(7)} ${subject.unit}${errors}`);
  return result;
}

/** Comparisons of targets.ts, each in interleaved rounds. */
async function compareAll(picked: Comparison[]): Promise<Measured[]> {
  const results: Measured[] = [];
  for (const comparison of picked) {
    say(`${elapsed()} ${comparison.path} vs ${comparison.reference}`);
    const r = await interleave(
      () => measureSubject(comparison.reference),
      () => measureSubject(comparison.path),
      rounds,
    );
    const median = (xs: LoadResult[]) => Math.round(spread(xs.map((x) => x.rps)).median);
    results.push({
      ...comparison,
      ratios: r.ratios,
      pathRate: median(r.path),
      referenceRate: median(r.reference),
    });
    const s = spread(r.ratios);
    say(
      `  = ${formatRatio(s.median, comparison)} (${formatRatio(s.min, comparison)}–${formatRatio(s.max, comparison)})`,
    );
  }
  return results;
}

/** A subject's row: medians over its rounds, then its half-load p99 and Redis costs. */
async function subjectRow(name: string, subject: Subject, results: LoadResult[]): Promise<Row> {
  const median = (pick: (r: LoadResult) => number) => spread(results.map(pick)).median;
  const rps = Math.round(median((r) => r.rps));
  const sum = (pick: (r: LoadResult) => number) => results.reduce((n, r) => n + pick(r), 0);
  const row: Row = {
    group: subject.group,
    name,
    unit: subject.unit,
    rps,
    rounds: results.map((r) => r.rps),
    p50: median((r) => r.p50),
    p99: median((r) => r.p99),
    requests: sum((r) => r.requests),
    errors: sum((r) => r.errors),
  };
  if (results.some((r) => r.rejected))
    row.rejected = {
      status: sum((r) => r.rejected?.status ?? 0),
      size: sum((r) => r.rejected?.size ?? 0),
      failed: sum((r) => r.rejected?.failed ?? 0),
    };
  const { http, op, redis } = subject;
  if (http) row.p99Half = (await atRate(http, rps / 2, { seconds: halfSeconds, connections })).p99;
  else if (op) row.p99Half = (await opsAtRate(op, rps / 2, halfSeconds)).p99;
  if (redis) {
    // Cached entries live CACHE_TTL_S (60 s): one loaded in the subject's first round may have run out
    // since. A few requests load it again first, so that what is counted is the path as it runs warm,
    // not a refill that falls into the counted requests by the run's timing.
    if (http) await exactly(http, 50);
    const perOne = http
      ? () => exactly(http, mode === 'smoke' ? 300 : 2000)
      : () =>
          measureOps(op as () => Promise<unknown>, {
            seconds: halfSeconds,
            concurrency: 1,
            warmupSeconds: 0,
          });
    row.redis = { instance: redis.instance, ...(await perRequest(redis.client, perOne)).redis };
  }
  return record(row);
}

/**
 * What the identity assertion costs per request: the gateway signs one (Ed25519), the service verifies
 * it, against the same work done with a shared-secret HMAC-SHA256 (the former scheme, in which every
 * service could mint identities). Both on the same payload; one op is one sign plus one verify.
 */
function identityAssertionSubjects(privateKey: KeyObject, publicKey: KeyObject): void {
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
  // As the gateway signs a turn's assertions (v3), ASSERTION_BATCH to a signature; each op takes one and
  // verifies it (the service checks a batch's signature once).
  const made: Array<{ token: string; requestId: string }> = [];
  const batchOp = async () => {
    if (made.length === 0) {
      const reqs = Array.from({ length: ASSERTION_BATCH }, () => {
        n += 1;
        return {
          audience: 'content',
          method: 'GET',
          url: '/api/articles/x',
          requestId: `r${n}`,
          clientIp: '127.0.0.1',
          identity: who,
        };
      });
      signer.signBatch(reqs).forEach((token, i) => {
        made.push({ token, requestId: (reqs[i] as (typeof reqs)[number]).requestId });
      });
    }
    const { token, requestId } = made.pop() as (typeof made)[number];
    if (!verifier.verify(token, { method: 'GET', url: '/api/articles/x', requestId }).ok)
      throw new Error('verify');
  };
  opsSubject(NAMES.hmac, hmacOp, { group: 'reference' });
  opsSubject(NAMES.ed25519, edOp);
  opsSubject(NAMES.ed25519Batch, batchOp);
}

/**
 * How many assertions the gateway made and under how many signatures over its whole life (its metrics):
 * the assertions of one turn of its event loop share one (@atoll/identity, v3).
 */
async function assertionBatches(gatewayUrl: string): Promise<{ assertions: number; signatures: number }> {
  const res = await fetch(`${gatewayUrl}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  const text = await res.text();
  const counter = (name: string) =>
    Number(new RegExp(`^${name}(?:{[^}]*})? (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
  return {
    assertions: counter('gateway_identity_assertions_total'),
    signatures: counter('gateway_identity_signatures_total'),
  };
}

/** µs of CPU per request for the identity assertion, from its row and the HMAC's. */
function sayIdentityCost(): void {
  const micros = (name: string) => {
    const row = rows.find((r) => r.name === name);
    return row ? Math.round(1e6 / Math.max(row.rps, 1)) : '?';
  };
  say(
    `${NAMES.ed25519}: ${micros(NAMES.ed25519)} µs of CPU per request (sign at the gateway + verify at the service; ` +
      `${ASSERTION_BATCH} per signature: ${micros(NAMES.ed25519Batch)} µs; HMAC: ${micros(NAMES.hmac)} µs)`,
  );
}

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
    `${row.name.padEnd(52)} ${String(row.rps).padStart(7)} ${row.unit}  p50 ${row.p50} ms  p99 ${row.p99} ms${half}${redis}  errors ${row.errors}`,
  );
  return row;
}

/** A row measured once, outside the comparisons (redis-benchmark, addBulk). */
const once = (row: Omit<Row, 'rounds'>): Row => record({ ...row, rounds: [row.rps] });

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
    once({
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
  await passwordsBench({
    outDir,
    seconds: mode === 'smoke' ? 1 : Number(option('duration') ?? 5),
    smoke: mode === 'smoke',
    say,
  });
  process.exit(0);
}

if (args.includes('--identity')) {
  // Just the identity assertion's cost, in this process: no stack, a few seconds.
  say(
    `atoll bench (identity): ${rounds} rounds of ${seconds} s, concurrency ${connections}, Node ${process.version}\n`,
  );
  const keys = identityKeyPair();
  identityAssertionSubjects(keys.privateKey, keys.publicKey);
  const identityPaths: string[] = [NAMES.ed25519, NAMES.ed25519Batch];
  const judged = judge(await compareAll(COMPARISONS.filter((c) => identityPaths.includes(c.path))));
  for (const name of [NAMES.hmac, ...identityPaths])
    await subjectRow(name, subjects.get(name) as Subject, measured.get(name) ?? []);
  sayIdentityCost();
  for (const comparison of judged)
    say(`${comparison.path} = ${formatRatio(comparison.ratio.median, {})} of the HMAC's rate`);
  process.exit(0);
}

try {
  say(
    `atoll bench (${mode}): ${rounds} interleaved rounds of ${seconds} s per side, ${connections} connections, Node ${process.version}, services from ${build === 'dist' ? 'their build' : 'their sources'}\n`,
  );
  if (build === 'dist') {
    await execFileAsync('pnpm', ['run', 'build'], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
    say(`${elapsed()} built`);
  }
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
    build,
    env: { LOG_LEVEL: 'warn', ...BENCH_ENV },
    serviceEnv: Object.fromEntries(
      (['gateway', 'auth', 'content', 'notifier'] as const).map((service) => [service, profiled(service)]),
    ),
  });
  cleanups.push(() => stack.stop());
  const contentEnv = stack.envOf('content');
  const startContent = async (extra: Record<string, string>, label: string) => {
    const proc = await ServiceProcess.start(
      'content',
      { ...contentEnv, PORT: '0', ...extra, ...profiled(`content-${label}`) },
      { build },
    );
    proc.stopRetaining();
    cleanups.push(async () => void (await proc.stop()));
    return proc;
  };
  // Content measured directly on instances of their own (the stack's serves the gateway's paths).
  const contentL1 = await startContent({}, 'l1');
  const contentL2 = await startContent({ CACHE_L1_MAX_ENTRIES: '1' }, 'l2');
  const contentUncached = await startContent({ CACHE_ENABLED: 'false' }, 'uncached');
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
   * Content answers only requests the gateway signed, each once: the load sends every request straight
   * to content with an assertion, as the gateway would, signed before each run (lib/presigned.ts) so that
   * the gateway's signatures do not take the two cores' time from content while it is measured. They are
   * signed ASSERTION_BATCH to a signature, as the gateway signs the assertions of a turn of its loop.
   */
  const signedReads: PresignedRequest[] = [];
  const signedRead = (slug: string) => {
    const request = new PresignedRequest(read(slug).path, (req) => gatewayHeaders(identity, 'content', req), {
      batch: { size: ASSERTION_BATCH, sign: (reqs) => gatewayHeadersBatch(identity, 'content', reqs) },
    });
    signedReads.push(request);
    return request;
  };
  const auth = { authorization: `Token ${token}` };
  const keys = createKeys(keyPrefix);
  const sessions = new SessionStore(sessionRedis as Redis, keys);
  /**
   * The writes, as requests for the gateway (with `auth`) or for the same-SQL reference (which writes as
   * the bench user without one). Their answers carry ids and counts whose digits grow, and `favorited`
   * true or false: a few bytes of slack, far below an error body's size.
   */
  const json = (headers: Record<string, string>) => ({ ...headers, 'content-type': 'application/json' });
  const createArticle = (headers: Record<string, string>): HttpRequest => ({
    path: '/api/articles',
    method: 'POST',
    headers: json(headers),
    body: JSON.stringify({ article: { title: 'Written under load', ...article } }),
    bodySlack: 8,
  });
  const addComment = (headers: Record<string, string>): HttpRequest => ({
    path: `/api/articles/${slugs[1]}/comments`,
    method: 'POST',
    headers: json(headers),
    body: JSON.stringify({ comment: { body: 'A comment written under load.' } }),
    bodySlack: 8,
  });
  const favoriteToggle = (headers: Record<string, string>): HttpRequest[] =>
    (['POST', 'DELETE'] as const).map((method) => ({
      path: `/api/articles/${slugs[1]}/favorite`,
      method,
      headers,
      bodySlack: 8,
    }));

  // Every path and its reference (the soak mode skips them and measures memory over time instead).
  const measureAll = async (): Promise<Judged[]> => {
    // ---- references
    const nodeHttp = await reference('node-http.ts', 'content');
    const bare = await reference('bare-fastify.ts', 'content');
    const proxy = await reference('fastify-proxy.ts', 'gateway', { UPSTREAM: bare });
    const session = await sessions.resolve(token);
    const sameSql = await reference('same-sql-writes.ts', 'content', {
      DATABASE_URL: contentEnv.DATABASE_URL as string,
      USER_ID: session?.userId as string,
      USERNAME: 'bench',
    });
    httpSubject(NAMES.nodeHttp, { url: nodeHttp, requests: [{ path: '/' }] }, { group: 'reference' });
    httpSubject(NAMES.bare, { url: bare, requests: [{ path: '/' }] }, { group: 'reference' });
    httpSubject(NAMES.bareArticle, { url: bare, requests: [{ path: '/article' }] }, { group: 'reference' });
    httpSubject(NAMES.proxy, { url: proxy, requests: [{ path: '/' }] }, { group: 'reference' });
    httpSubject(
      NAMES.sameSqlCreateArticle,
      { url: sameSql, requests: [createArticle({})] },
      { group: 'reference' },
    );
    httpSubject(
      NAMES.sameSqlAddComment,
      { url: sameSql, requests: [addComment({})] },
      { group: 'reference' },
    );
    httpSubject(
      NAMES.sameSqlFavorite,
      { url: sameSql, requests: favoriteToggle({}) },
      { group: 'reference' },
    );

    // ---- atoll over HTTP
    const sessionCounts = { client: sessionRedis as Redis, instance: 'session' };
    const cacheCounts = { client: cacheRedis as Redis, instance: 'cache' };
    httpSubject(
      NAMES.anonymousRead,
      { url: gateway, requests: [read(slugs[0] as string)] },
      { redis: sessionCounts },
    );
    httpSubject(
      NAMES.authenticatedRead,
      { url: gateway, requests: [{ ...read(slugs[0] as string), headers: auth }] },
      { redis: sessionCounts },
    );
    httpSubject(NAMES.passThrough, { url: gateway, requests: [{ path: '/api/tags' }] });
    httpSubject(
      NAMES.l1,
      { url: contentL1.url, requests: [signedRead(slugs[0] as string)] },
      { redis: cacheCounts },
    );
    httpSubject(NAMES.l2, { url: contentL2.url, requests: slugs.map(signedRead) }, { redis: cacheCounts });
    httpSubject(NAMES.uncached, { url: contentUncached.url, requests: slugs.map(signedRead) });
    httpSubject(NAMES.createArticle, { url: gateway, requests: [createArticle(auth)] });
    httpSubject(NAMES.addComment, { url: gateway, requests: [addComment(auth)] });
    httpSubject(NAMES.favorite, { url: gateway, requests: favoriteToggle(auth) });

    // ---- in this process: the identity assertion, session resolution, enqueues, workers
    identityAssertionSubjects(identity.privateKey, identity.publicKey);
    opsSubject(NAMES.redisGet, () => (sessionRedis as Redis).get('bench:nothing'), {
      group: 'reference',
      redis: sessionCounts,
    });
    opsSubject(NAMES.session, () => sessions.resolve(token), { redis: sessionCounts });

    const refRedis = await RedisServer.start('cache');
    const refQueue = await RedisServer.start('queue');
    cleanups.push(
      () => refRedis.dispose(),
      () => refQueue.dispose(),
    );
    const queueClient = await connectRedis({
      url: refQueue.url,
      role: 'queue',
      use: 'producer',
      name: 'bench:queue',
      log,
    });
    cleanups.push(async () => closeRedis(queueClient));
    // Enqueues go to a queue no worker takes from; the raw worker drains a queue of its own.
    const raw = new Queue('bench-raw', { connection: queueClient, prefix: '{benchraw}' });
    const drained = new Queue('bench-drain', { connection: queueClient, prefix: '{benchraw}' });
    cleanups.push(
      () => raw.close(),
      () => drained.close(),
    );
    const payload = {
      v: 1 as const,
      actorId: randomUUID(),
      actorUsername: 'bench',
      recipientId: randomUUID(),
      occurredAt: new Date().toISOString(),
    };
    opsSubject(NAMES.queueAdd, () => raw.add('follow', payload, { removeOnComplete: true }), {
      group: 'reference',
      unit: 'jobs/s',
    });
    const producer = new Producer(queueClient, createKeys('benchq'));
    cleanups.push(() => producer.close());
    opsSubject(NAMES.enqueue, () => producer.enqueue('notifications', 'follow', payload), { unit: 'jobs/s' });

    const worker = ServiceProcess.spawn(
      'content',
      {
        REDIS_URL: refQueue.url,
        QUEUE: 'bench-drain',
        PREFIX: '{benchraw}',
        CONCURRENCY: String(WORKER_CONCURRENCY),
      },
      { entry: '../../bench/refs/bullmq-worker.ts', nodeOptions: '', serviceEnv: {} },
    );
    cleanups.push(async () => void (await worker.stop()));
    await worker.waitForLog((l) => l.msg === 'listening');
    const bulk = Array.from({ length: 100 }, () => ({
      name: 'follow',
      data: payload,
      opts: { removeOnComplete: { count: 1000 } },
    }));
    subjects.set(NAMES.rawWorker, {
      group: 'reference',
      unit: 'jobs/s',
      measure: () =>
        drain(drained, jobs, async () => {
          for (let i = 0; i < jobs; i += bulk.length) await drained.addBulk(bulk);
        }),
    });
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
    subjects.set(NAMES.notifier, {
      group: 'atoll',
      unit: 'jobs/s',
      measure: () =>
        drain(notifications, jobs, async () => {
          for (let i = 0; i < jobs; i += 100) {
            await notifications.addBulk(
              Array.from({ length: 100 }, () => ({
                name: 'follow',
                data: { ...payload, recipientId: randomUUID() },
                opts: { ...QUEUES.notifications.options, jobId: randomUUID() },
              })),
            );
          }
        }),
    });

    // ---- the comparisons, in rounds; then each subject's row
    const comparisons = judge(
      await compareAll(
        COMPARISONS.filter((c) => !only || c.path.includes(only) || c.reference.includes(only)),
      ),
    );
    say(`${elapsed()} half-load p99 and Redis costs`);
    for (const [name, subject] of subjects) {
      const results = measured.get(name);
      if (results) await subjectRow(name, subject, results);
    }
    if (measured.has(NAMES.ed25519)) sayIdentityCost();

    // ---- measured once, beside the comparisons
    if (!only) {
      say(`${elapsed()} redis-benchmark, addBulk, SSE fan-out`);
      await redisBenchmark(refRedis.url, 1);
      await redisBenchmark(refRedis.url, 16);
      // Jobs per second through addBulk of 100 (p50/p99 are per addBulk call).
      const bulkLoad = await measureOps(() => raw.addBulk(bulk), {
        seconds,
        concurrency: connections,
        warmupSeconds,
      });
      once({
        group: 'reference',
        name: 'BullMQ addBulk ×100 (raw), in jobs',
        unit: 'jobs/s',
        ...bulkLoad,
        rps: bulkLoad.rps * 100,
      });
      const sseUrl = await reference('sse-fanout.ts', 'content', { NODE_OPTIONS: '--expose-gc' });
      fanOutResult = await fanOut(sseUrl, sse.streams, sse.events);
      say(`raw SSE fan-out: ${JSON.stringify(fanOutResult)}`);
    }
    return comparisons;
  };
  let fanOutResult: FanOutResult | undefined;
  say(`${elapsed()} stack up`);
  /**
   * The resident set of the stack's four services after `idleSeconds` with no load: what a quiet stack
   * holds. Taken once the stack has started and answered the seeding (warm), and again after the run.
   */
  const idleRss = async () => {
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const each = Object.fromEntries(
      Object.entries(stack.services).map(([name, proc]) => [
        name,
        proc.child.pid ? mib(rss(proc.child.pid)) : null,
      ]),
    );
    const total = Object.values(each).reduce<number>((sum, v) => sum + (v ?? 0), 0);
    const pids = Object.values(stack.services).flatMap((proc) => (proc.child.pid ? [proc.child.pid] : []));
    const anon = pids.reduce((sum, pid) => sum + (rssAnon(pid) ?? 0), 0);
    const file = Math.max(0, ...pids.map((pid) => rssFile(pid) ?? 0));
    // What each one's resident set holds; its metrics are asked for after every RSS above was read.
    const detail: Record<string, IdleDetail> = {};
    for (const [name, proc] of Object.entries(stack.services)) {
      const pid = proc.child.pid;
      if (!pid) continue;
      const anonBytes = rssAnon(pid);
      const v8 = await v8Memory(proc.url, METRICS_TOKEN);
      const outside =
        anonBytes === null || v8.total === null ? null : anonBytes - v8.total - (v8.external ?? 0);
      detail[name] = {
        anonMiB: mib(anonBytes),
        fileMiB: mib(rssFile(pid)),
        heapTotalMiB: mib(v8.total),
        heapLiveMiB: mib(v8.live),
        codeMiB: mib(v8.code),
        externalMiB: mib(v8.external),
        otherAnonMiB: mib(outside),
      };
    }
    return { each, detail, totalMiB: Math.round(total * 10) / 10, sharedOnceMiB: mib(anon + file) ?? 0 };
  };
  const idleWarm = await idleRss();
  say(`${elapsed()} idle after start and seeding: ${JSON.stringify(idleWarm)}`);
  const comparisons = mode === 'soak' ? [] : await measureAll();
  say(`${elapsed()} measured`);
  const signing = await assertionBatches(gateway);
  say(`gateway assertions per signature: ${JSON.stringify(signing)}`);
  const idleAfter = mode === 'soak' ? undefined : await idleRss();
  if (idleAfter) say(`${elapsed()} idle after the run: ${JSON.stringify(idleAfter)}`);

  // ---- memory: the peak resident set of every service over the run (read again after a soak)
  const peakMemory = () =>
    Object.fromEntries(
      [
        ...Object.entries(stack.services).map(([name, proc]) => [name, proc.child.pid] as const),
        ['content (direct, L1)', contentL1.child.pid] as const,
        ['content (L1 of 1)', contentL2.child.pid] as const,
        ['content (uncached)', contentUncached.child.pid] as const,
      ].map(([name, pid]) => [name, { pid: pid ?? null, peakRssMiB: pid ? mib(peakRss(pid)) : null }]),
    );
  const memory = peakMemory();

  const report: Report = {
    when: new Date().toISOString(),
    mode,
    rounds,
    seconds,
    connections,
    node: process.version,
    cpus: cpus().length,
    build,
    durationSeconds: Math.round((Date.now() - started) / 1000),
    rows,
    comparisons,
    ...(signedReads.length > 0
      ? { presigned: { inline: signedReads.reduce((n, r) => n + r.inline, 0) } }
      : {}),
    checks: [
      ...roundTripCheck(rows, NAMES.authenticatedRead, 1),
      ...roundTripCheck(rows, NAMES.l1, 0),
      ...rows
        .filter((r) => r.group === 'atoll' && r.unit === 'req/s' && r.p99Half !== undefined)
        .flatMap((r) => halfLoadCheck(rows, r.name, NAMES.bare, 3)),
      check(`the four services' RSS, idle after start and seeding (MiB)`, idleWarm.totalMiB, IDLE_STACK_MIB),
      ...(idleAfter
        ? [check(`the four services' RSS, idle after the run (MiB)`, idleAfter.totalMiB, IDLE_STACK_MIB)]
        : []),
    ],
    idle: {
      seconds: idleSeconds,
      afterStart: idleWarm.each,
      afterStartSharedOnceMiB: idleWarm.sharedOnceMiB,
      afterStartDetail: idleWarm.detail,
      ...(idleAfter
        ? {
            afterRun: idleAfter.each,
            afterRunSharedOnceMiB: idleAfter.sharedOnceMiB,
            afterRunDetail: idleAfter.detail,
          }
        : {}),
    },
    ...(fanOutResult ? { sse: fanOutResult } : {}),
    memory,
    signing,
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
  if (mode === 'soak') {
    report.memory = peakMemory();
    // The stack at rest once the soak is over.
    const rested = await idleRss();
    say(`${elapsed()} idle after the soak: ${JSON.stringify(rested)}`);
    report.idle = {
      seconds: idleSeconds,
      afterStart: idleWarm.each,
      afterRun: rested.each,
      afterStartSharedOnceMiB: idleWarm.sharedOnceMiB,
      afterRunSharedOnceMiB: rested.sharedOnceMiB,
      afterStartDetail: idleWarm.detail,
      afterRunDetail: rested.detail,
    };
    report.checks.push(
      check(`the four services' RSS, idle after the soak (MiB)`, rested.totalMiB, IDLE_STACK_MIB),
    );
  }
  const written = writeReport(report, outDir, mode === 'soak' ? 'soak' : 'latest');
  say(`\n${written.markdown}\n\nwritten to ${written.files.join(', ')}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
if (profileDir) {
  const summaries = summarizeDir(profileDir, repoRoot);
  const file = join(outDir, 'profile.md');
  writeFileSync(
    file,
    `${profileMarkdown(summaries, `Where each service spends its CPU time under \`pnpm bench ${args.join(' ')}\``)}\n`,
  );
  say(`profiles summed per service in ${file} (raw profiles in ${profileDir})`);
}
process.exit(0);
