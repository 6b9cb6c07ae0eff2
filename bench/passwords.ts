/**
 * `pnpm bench --passwords`: the latency of login and sign-up, alone and under a login flood, with
 * Argon2id through the whole stack (gateway, auth, PostgreSQL, Redis; the default cost and hashing
 * pool) beside the scrypt N=2^17 hashing atoll used before (bench/refs/scrypt-login.ts: the hashing
 * alone, unbounded, as auth did it; a floor for the old path).
 *
 * For each: login and sign-up p50/p99 from one client in turn ("idle"), then the same client's while
 * FLOOD clients log in as fast as they can ("under flood"), with the answers that were not 2xx (503
 * AUTH_HASHING_BUSY is the pool refusing work it cannot start soon). Target: Argon2id login and sign-up
 * p50 ≤ 150 ms idle. Results: bench/results/passwords.{json,md}.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import {
  createDatabase,
  freePort,
  identityKeyPair,
  ownedTempDir,
  removeOwnedDir,
  ServiceProcess,
  startEmbeddedPostgres,
  startStack,
} from '@atoll/testkit/servers';

export interface PasswordRow {
  hashing: string;
  operation: 'login' | 'sign-up';
  load: 'idle' | 'under flood';
  /** Of the answers that succeeded (2xx). */
  p50: number;
  p99: number;
  /** Of every answer, refusals included. */
  p50All: number;
  requests: number;
  /** Answers other than 2xx, by status. */
  refused: Record<string, number>;
  /** Under flood: the flood's own requests per second and answers other than 2xx. */
  flood?: { rps: number; refused: Record<string, number> };
}

const FLOOD = 16;
/** The flood comes from one place, the measured client from another. */
const FLOOD_ADDRESS = '203.0.113.7';
const VICTIM_ADDRESS = '198.51.100.7';

/** One request: where, what, and (through the gateway) the client address a trusted proxy names. */
interface Req {
  url: string;
  body: unknown;
  from?: string;
}

interface Loop {
  latencies: number[];
  /** The latencies of the 2xx answers. */
  ok: number[];
  statuses: Record<string, number>;
}

/**
 * `concurrency` clients, each sending `request(i)` in turn until `seconds` have passed and at least
 * `minRequests` succeeded (two minutes more at most), or until `stop()` says so.
 */
async function loop(
  seconds: number,
  concurrency: number,
  request: (i: number) => Req,
  opts: { minRequests?: number; stop?: () => boolean; pauseAfterRefusalMs?: number } = {},
): Promise<Loop> {
  const end = performance.now() + seconds * 1000;
  const out: Loop = { latencies: [], statuses: {}, ok: [] };
  const more = () =>
    opts.stop
      ? !opts.stop()
      : performance.now() < end ||
        (out.ok.length < (opts.minRequests ?? 0) && performance.now() < end + 120_000);
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (more()) {
        const { url, body, from } = request(i++);
        const t0 = performance.now();
        const res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(from ? { 'x-forwarded-for': from } : {}) },
          body: JSON.stringify(body),
        });
        await res.arrayBuffer();
        const ms = performance.now() - t0;
        out.latencies.push(ms);
        if (res.ok) out.ok.push(ms);
        out.statuses[res.status] = (out.statuses[res.status] ?? 0) + 1;
        if (!res.ok && opts.pauseAfterRefusalMs) {
          await new Promise((r) => setTimeout(r, opts.pauseAfterRefusalMs));
        }
      }
    }),
  );
  return out;
}

const quantile = (sorted: number[], q: number) =>
  Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0);
const refusedOf = (statuses: Record<string, number>) =>
  Object.fromEntries(Object.entries(statuses).filter(([s]) => !s.startsWith('2')));

function row(hashing: string, operation: PasswordRow['operation'], load: PasswordRow['load'], r: Loop) {
  const ok = [...r.ok].sort((a, b) => a - b);
  const all = [...r.latencies].sort((a, b) => a - b);
  return {
    hashing,
    operation,
    load,
    p50: quantile(ok, 0.5),
    p99: quantile(ok, 0.99),
    p50All: quantile(all, 0.5),
    requests: all.length,
    refused: refusedOf(r.statuses),
  };
}

/**
 * How long each measurement runs, and under flood how many of the measured client's requests must have
 * succeeded before it stops (5; 1 in `--smoke`, where a scrypt login under flood takes 6 s).
 */
interface Span {
  seconds: number;
  succeeded: number;
}

/** Idle and under-flood figures of one system's login and sign-up. */
async function measureSystem(
  hashing: string,
  { seconds, succeeded }: Span,
  login: (i: number) => Req,
  signup: (i: number) => Req,
  floodLogin: (i: number) => Req,
  say: (line: string) => void,
): Promise<PasswordRow[]> {
  const rows: PasswordRow[] = [];
  const show = (r: PasswordRow) => {
    rows.push(r);
    const flood = r.flood ? `  flood ${r.flood.rps} req/s refused ${JSON.stringify(r.flood.refused)}` : '';
    say(
      `${`${hashing}: ${r.operation} ${r.load}`.padEnd(48)} p50 ${r.p50} ms  p99 ${r.p99} ms  p50 all ${r.p50All} ms  n ${r.requests}  refused ${JSON.stringify(r.refused)}${flood}`,
    );
  };
  await loop(Math.min(1, seconds), 1, login); // warm-up
  show(row(hashing, 'login', 'idle', await loop(seconds, 1, login)));
  show(row(hashing, 'sign-up', 'idle', await loop(seconds, 1, signup)));
  for (const [operation, request] of [
    ['login', login],
    ['sign-up', signup],
  ] as const) {
    // The flood runs until the measured client, which starts once the flood is under way, is done.
    let done = false;
    const floodStarted = performance.now();
    const [flood, victim] = await Promise.all([
      loop(0, FLOOD, floodLogin, { stop: () => done }),
      new Promise<Loop>((resolve) =>
        setTimeout(async () => {
          // A person trying again, not at once (the flood does try again at once).
          const measured = await loop(seconds, 1, request, {
            minRequests: succeeded,
            pauseAfterRefusalMs: 250,
          });
          done = true;
          resolve(measured);
        }, 1000),
      ),
    ]);
    const floodSeconds = (performance.now() - floodStarted) / 1000;
    show({
      ...row(hashing, operation, 'under flood', victim),
      flood: {
        rps: Math.round(flood.latencies.length / floodSeconds),
        refused: refusedOf(flood.statuses),
      },
    });
  }
  return rows;
}

function markdown(rows: PasswordRow[], meta: { when: string; node: string; cpus: number } & Span) {
  const lines = [
    '# Password hashing: login and sign-up latency',
    '',
    `${meta.when}, Node ${meta.node}, ${meta.cpus} cores. One client in turn for ${meta.seconds} s (under flood: until at least ${meta.succeeded} succeeded, waiting 250 ms after a refusal), idle and while ${FLOOD} other clients log in as fast as they can from one other address (${FLOOD_ADDRESS}, named in X-Forwarded-For; the gateway's per-address limits lifted). p50 and p99 are of the answers that succeeded; "p50 all" includes the refusals. Only \`pnpm bench --passwords\` ran.`,
    '',
    '| hashing | operation | load | p50 ms | p99 ms | p50 all ms | requests | not 2xx | flood req/s | flood not 2xx |',
    '|---|---|---|---:|---:|---:|---:|---|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.hashing} | ${r.operation} | ${r.load} | ${r.p50} | ${r.p99} | ${r.p50All} | ${r.requests} | ${JSON.stringify(r.refused)} | ${r.flood?.rps ?? ''} | ${r.flood ? JSON.stringify(r.flood.refused) : ''} |`,
    ),
    '',
  ];
  const argon = rows.filter((r) => r.hashing.startsWith('Argon2id') && r.load === 'idle');
  const met = argon.length > 0 && argon.every((r) => r.p50 <= 150);
  lines.push(
    `Target: Argon2id login and sign-up p50 ≤ 150 ms idle: ${met ? 'met' : '**not met**'} (${argon.map((r) => `${r.operation} ${r.p50} ms`).join(', ')}).`,
    '',
    'The scrypt rows are the hashing alone (no gateway, database or Redis): the old path was slower still.',
    '',
  );
  return lines.join('\n');
}

export async function passwordsBench(opts: {
  outDir: string;
  seconds: number;
  smoke: boolean;
  say: (line: string) => void;
}): Promise<void> {
  const { seconds, say } = opts;
  const span: Span = { seconds, succeeded: opts.smoke ? 1 : 5 };
  const cleanups: Array<() => Promise<unknown>> = [];
  try {
    say(`atoll bench (passwords): ${seconds} s per measurement, Node ${process.version}\n`);
    // ---- the old hashing: scrypt N=2^17, unbounded
    const port = await freePort();
    const ref = ServiceProcess.spawn(
      'auth',
      { PORT: String(port) },
      { entry: '../../bench/refs/scrypt-login.ts', nodeOptions: '', serviceEnv: {} },
    );
    cleanups.push(() => ref.stop());
    await ref.waitForLog((l) => l.msg === 'listening');
    ref.stopRetaining();
    const refUrl = `http://127.0.0.1:${port}`;
    const password = 'correct horse battery';
    const refLogin = () => ({ url: `${refUrl}/login`, body: { user: { password } } });
    const refSignup = () => ({ url: `${refUrl}/signup`, body: { user: { password } } });
    const rows = await measureSystem('scrypt N=2^17 (before)', span, refLogin, refSignup, refLogin, say);
    await ref.stop();

    // ---- atoll: Argon2id at the default cost, through the stack
    const dataDir = await ownedTempDir('bench-pw');
    cleanups.push(async () => removeOwnedDir(dataDir));
    let adminUrl = process.env.DATABASE_URL;
    if (!adminUrl) {
      const pgDir = await ownedTempDir('bench-pw-pg');
      const pg = await startEmbeddedPostgres({ dir: pgDir });
      cleanups.push(async () => {
        await pg.stop();
        removeOwnedDir(pgDir);
      });
      adminUrl = pg.adminUrl;
    }
    const database = await createDatabase(adminUrl, 'bench-pw');
    cleanups.push(() => database.drop());
    const stack = await startStack({
      dataDir,
      identity: identityKeyPair(),
      keyPrefix: `b${randomBytes(3).toString('hex')}`,
      databaseUrl: database.url,
      env: {
        LOG_LEVEL: 'warn',
        RATE_LIMIT_ANONYMOUS_MAX: '100000000',
        RATE_LIMIT_AUTH_MAX: '100000000',
        RATE_LIMIT_ADDRESS_MAX: '100000000',
        // This process is the proxy: the flood and the measured client come from different addresses.
        TRUSTED_PROXIES: '127.0.0.1',
      },
    });
    cleanups.push(() => stack.stop());
    const gateway = stack.gatewayUrl;
    const run = randomBytes(3).toString('hex');
    const register = async (name: string) => {
      const res = await fetch(`${gateway}/api/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: { username: name, email: `${name}@example.com`, password } }),
      });
      if (res.status !== 201) throw new Error(`sign-up ${name}: ${res.status} ${await res.text()}`);
      return `${name}@example.com`;
    };
    const victim = await register(`victim${run}`);
    // One account per flood client: the guessing limiter allows 5 attempts in flight per account and address.
    const flooders: string[] = [];
    for (let i = 0; i < FLOOD; i += 1) flooders.push(await register(`flood${run}x${i}`));
    const login = () => ({
      url: `${gateway}/api/users/login`,
      body: { user: { email: victim, password } },
      from: VICTIM_ADDRESS,
    });
    let n = 0;
    const signup = () => {
      n += 1;
      const name = `new${run}x${n}`;
      return {
        url: `${gateway}/api/users`,
        body: { user: { username: name, email: `${name}@example.com`, password } },
        from: VICTIM_ADDRESS,
      };
    };
    const floodLogin = (i: number) => ({
      url: `${gateway}/api/users/login`,
      body: { user: { email: flooders[i % FLOOD], password } },
      from: FLOOD_ADDRESS,
    });
    rows.push(...(await measureSystem('Argon2id m=64 MiB t=3 (now)', span, login, signup, floodLogin, say)));

    const meta = { when: new Date().toISOString(), node: process.version, cpus: cpus().length, ...span };
    const md = markdown(rows, meta);
    writeFileSync(
      join(opts.outDir, 'passwords.json'),
      `${JSON.stringify({ ...meta, flood: FLOOD, rows }, null, 2)}\n`,
    );
    writeFileSync(join(opts.outDir, 'passwords.md'), md);
    say(`\n${md}\nwritten to ${join(opts.outDir, 'passwords.{json,md}')}`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  }
}
