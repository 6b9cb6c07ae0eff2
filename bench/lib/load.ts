/**
 * HTTP load with autocannon, from this process, against a server in another process on loopback.
 * `measure` runs a short warm-up, then the timed run at full speed; `atRate` runs at a fixed request
 * rate (half the measured maximum) to see the latency under normal load.
 */
import autocannon from 'autocannon';

export interface HttpTarget {
  url: string;
  /** Requests taken in turn; each may have its own path, method, headers and body. */
  requests: Array<{
    path: string;
    method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
    headers?: Record<string, string>;
    body?: string;
    /** Called before each request is sent, e.g. to sign it (autocannon's `setupRequest`). */
    setupRequest?: (request: autocannon.Request) => autocannon.Request;
  }>;
}

export interface LoadResult {
  /** Requests per second (the mean of autocannon's per-second samples). */
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  errors: number;
}

export interface LoadOptions {
  seconds: number;
  connections: number;
}

async function run(
  target: HttpTarget,
  opts: LoadOptions & { warmupSeconds?: number; rate?: number },
): Promise<LoadResult> {
  const r = await autocannon({
    url: target.url,
    connections: opts.connections,
    duration: opts.seconds,
    requests: target.requests,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
  });
  return {
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    // Every response counted (requests.total is built from per-second samples and can miss the tail).
    requests: r['2xx'] + r.non2xx,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

/** The maximum: a warm-up of `warmupSeconds`, then `seconds` measured. */
export async function measure(
  target: HttpTarget,
  opts: LoadOptions & { warmupSeconds: number },
): Promise<LoadResult> {
  await run(target, { ...opts, seconds: opts.warmupSeconds });
  return run(target, opts);
}

/**
 * Exactly `amount` requests over one connection, one at a time: for counting what each request costs
 * elsewhere (autocannon's duration-based totals are built from per-second samples and drift).
 */
export async function exactly(target: HttpTarget, amount: number): Promise<LoadResult> {
  const r = await autocannon({ url: target.url, connections: 1, amount, requests: target.requests });
  return {
    rps: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: amount,
    errors: r.errors + r.timeouts + r.non2xx,
  };
}

/** The same requests at a fixed overall rate (requests per second). */
export function atRate(target: HttpTarget, rate: number, opts: LoadOptions): Promise<LoadResult> {
  return run(target, { ...opts, rate: Math.max(1, Math.round(rate)) });
}

/**
 * The same shape for work done in this process (a Redis call, an enqueue): `concurrency` loops calling
 * `op` for `seconds`, latencies recorded per call.
 */
export async function measureOps(
  op: () => Promise<unknown>,
  opts: { seconds: number; concurrency: number; warmupSeconds: number },
): Promise<LoadResult> {
  const loop = async (until: number, latencies: number[] | null, counter: { n: number; errors: number }) => {
    while (performance.now() < until) {
      const start = performance.now();
      try {
        await op();
        counter.n += 1;
      } catch {
        counter.errors += 1;
      }
      latencies?.push(performance.now() - start);
    }
  };
  if (opts.warmupSeconds > 0) {
    const warmUntil = performance.now() + opts.warmupSeconds * 1000;
    await Promise.all(
      Array.from({ length: opts.concurrency }, () => loop(warmUntil, null, { n: 0, errors: 0 })),
    );
  }
  const latencies: number[] = [];
  const counter = { n: 0, errors: 0 };
  const started = performance.now();
  const until = started + opts.seconds * 1000;
  await Promise.all(Array.from({ length: opts.concurrency }, () => loop(until, latencies, counter)));
  const elapsed = (performance.now() - started) / 1000;
  return {
    rps: Math.round(counter.n / elapsed),
    ...percentiles(latencies),
    requests: counter.n,
    errors: counter.errors,
  };
}

/** `op` started at a steady `rate` per second (in 10 ms ticks) for `seconds`: latencies under that load. */
export async function opsAtRate(
  op: () => Promise<unknown>,
  rate: number,
  seconds: number,
): Promise<LoadResult> {
  const latencies: number[] = [];
  let errors = 0;
  const inflight: Promise<void>[] = [];
  const perTick = rate / 100;
  let owed = 0;
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    owed += perTick;
    for (; owed >= 1; owed -= 1) {
      const t = performance.now();
      inflight.push(
        op().then(
          () => {
            latencies.push(performance.now() - t);
          },
          () => {
            errors += 1;
          },
        ),
      );
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await Promise.all(inflight);
  return {
    rps: Math.round(latencies.length / seconds),
    ...percentiles(latencies),
    requests: latencies.length,
    errors,
  };
}

/** p50 and p99 of latencies in milliseconds (sorts them in place). */
function percentiles(latencies: number[]): { p50: number; p99: number } {
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2));
  return { p50: at(0.5), p99: at(0.99) };
}
