/**
 * `pnpm bench`: article reads straight to content, side by side with a bare Fastify hello-world, in one
 * run on this machine (loopback only, bounded in time). Every server is a child process of this one,
 * started the same way, so the ratios compare like with like:
 *
 * - bare Fastify: `GET /` answering `{"hello":"world"}`;
 * - content, L1 hit: one article read again and again (served from the process's LRU);
 * - content, L2 hit: two articles read in turn by an instance whose L1 holds one entry (so every read
 *   misses L1 and finds redis-cache);
 * - content, uncached: the same reads on an instance with CACHE_ENABLED=false (PostgreSQL every time).
 *
 * Targets (issue 4): L1 ≥ 85% and L2 ≥ 60% of bare Fastify's requests per second; L2 ≥ 2× uncached.
 * Results: bench/results/content-cache.json and .md. Options: BENCH_SECONDS (default 5), DATABASE_URL.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_HEADER, signIdentity } from '@atoll/identity';
import {
  createDatabase,
  freePort,
  ownedTempDir,
  RedisServer,
  removeOwnedDir,
  repoRoot,
  ServiceProcess,
  startEmbeddedPostgres,
} from '@atoll/testkit/servers';
import autocannon from 'autocannon';

const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const connections = 32;
const secret = randomBytes(32).toString('hex');

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function measure(name: string, url: string, paths: string[]): Promise<Row> {
  // A short warm-up, then the measured run.
  await autocannon({ url, connections, duration: 1, requests: paths.map((path) => ({ path })) });
  const r = await autocannon({
    url,
    connections,
    duration: seconds,
    requests: paths.map((path) => ({ path })),
  });
  const row = {
    name,
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.non2xx,
  };
  console.log(
    `${name.padEnd(24)} ${String(row.rps).padStart(7)} req/s  p50 ${row.p50} ms  p99 ${row.p99} ms  errors ${row.errors}`,
  );
  return row;
}

const cleanups: Array<() => Promise<void>> = [];
try {
  // Real components: Redis with the role files, PostgreSQL, content's migrations.
  const [cache, queue] = await Promise.all([RedisServer.start('cache'), RedisServer.start('queue')]);
  cleanups.push(
    () => cache.dispose(),
    () => queue.dispose(),
  );
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dir = await ownedTempDir('bench-pg');
    const pg = await startEmbeddedPostgres({ dir });
    cleanups.push(async () => {
      await pg.stop();
      removeOwnedDir(dir);
    });
    adminUrl = pg.adminUrl;
  }
  const database = await createDatabase(adminUrl, 'bench');
  cleanups.push(() => database.drop());
  const migrate = ServiceProcess.spawn(
    'content',
    { DATABASE_URL: database.url },
    { entry: 'src/migrate.ts' },
  );
  if ((await migrate.exited).code !== 0) throw new Error(`migrations failed: ${migrate.stderr}`);

  const env = {
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'warn',
    IDENTITY_SECRET: secret,
    DATABASE_URL: database.url,
    REDIS_CACHE_URL: cache.url,
    REDIS_QUEUE_URL: queue.url,
    AUTH_URL: 'http://127.0.0.1:9',
  };
  // Logging at warn, as a busy production instance might.
  const start = async (extra: Record<string, string>) => {
    const proc = await ServiceProcess.start('content', { ...env, ...extra });
    proc.stopRetaining();
    cleanups.push(async () => void (await proc.stop()));
    return proc;
  };
  const l1 = await start({});
  const l2 = await start({ CACHE_L1_MAX_ENTRIES: '1' });
  const uncached = await start({ CACHE_ENABLED: 'false' });

  // The reference: a bare Fastify hello-world, started as a child process like the others.
  const barePort = await freePort();
  const bare = ServiceProcess.spawn(
    'content',
    { PORT: String(barePort) },
    { entry: '../../bench/bare-fastify.ts' },
  );
  cleanups.push(async () => void (await bare.stop()));
  await bare
    .waitForLog((l) => l.msg === 'listening')
    .catch((err: Error) => {
      throw new Error(`${err.message} ${bare.stderr}`);
    });
  const bareUrl = `http://127.0.0.1:${barePort}`;

  // Two articles, written through content as a signed-in author.
  const author = { userId: randomUUID(), username: 'bench', sessionId: 'bench', roles: ['user'] };
  const slugs: string[] = [];
  for (const title of ['Benchmark one', 'Benchmark two']) {
    const requestId = randomUUID();
    const res = await fetch(`${l1.url}/api/articles`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-request-id': requestId,
        [IDENTITY_HEADER]: signIdentity(author, { secret, requestId, clientIp: '127.0.0.1', ttlSeconds: 60 }),
      },
      body: JSON.stringify({
        article: {
          title,
          description: 'A typical article',
          body: 'x'.repeat(2000),
          tagList: ['bench', 'cache'],
        },
      }),
    });
    if (res.status !== 201)
      throw new Error(`could not create the article: ${res.status} ${await res.text()}`);
    slugs.push(((await res.json()) as { article: { slug: string } }).article.slug);
  }
  const paths = slugs.map((s) => `/api/articles/${s}`);

  console.log(`atoll bench: ${seconds} s per path, ${connections} connections, Node ${process.version}\n`);
  const rows = [
    await measure('bare Fastify', bareUrl, ['/']),
    await measure('content, L1 hit', l1.url, [paths[0] as string]),
    await measure('content, L2 hit', l2.url, paths),
    await measure('content, uncached', uncached.url, paths),
  ];
  const [base, hitL1, hitL2, none] = rows as [Row, Row, Row, Row];
  const checks = [
    { target: 'L1 hit ≥ 85% of bare Fastify', value: hitL1.rps / base.rps, min: 0.85 },
    { target: 'L2 hit ≥ 60% of bare Fastify', value: hitL2.rps / base.rps, min: 0.6 },
    { target: 'L2 hit ≥ 2× uncached', value: hitL2.rps / none.rps, min: 2 },
  ].map((c) => ({ ...c, met: c.value >= c.min }));

  const table = [
    '| path | req/s | p50 ms | p99 ms | vs bare Fastify |',
    '|---|---:|---:|---:|---:|',
    ...rows.map(
      (r) => `| ${r.name} | ${r.rps} | ${r.p50} | ${r.p99} | ${((r.rps / base.rps) * 100).toFixed(0)}% |`,
    ),
    '',
    '| target | measured | met |',
    '|---|---:|---|',
    ...checks.map(
      (c) =>
        `| ${c.target} | ${c.min >= 1 ? `${c.value.toFixed(2)}×` : `${(c.value * 100).toFixed(0)}%`} | ${c.met ? 'yes' : 'no'} |`,
    ),
  ].join('\n');
  const outDir = join(repoRoot, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const when = new Date().toISOString();
  writeFileSync(
    join(outDir, 'content-cache.json'),
    `${JSON.stringify({ when, seconds, connections, node: process.version, rows, checks }, null, 2)}\n`,
  );
  writeFileSync(join(outDir, 'content-cache.md'), `# Content cache benchmark (${when})\n\n${table}\n`);
  console.log(`\n${table}\n\nwritten to bench/results/content-cache.{json,md}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
}
process.exit(0);
