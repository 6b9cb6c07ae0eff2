/**
 * HTTP load with autocannon, from this process, against a server in another process on loopback.
 * `measure` runs a short warm-up, then the timed run at full speed; `atRate` runs at a fixed request
 * rate (half the measured maximum) to see the latency under normal load.
 *
 * Only good answers count as throughput: a 2xx whose body has the size a good answer has. That size is
 * learnt once per request from a probe sent before the first run (which must answer 2xx), so a path that
 * starts answering 404s, 500s or empty bodies under load shows as errors, never as speed.
 */
import autocannon from 'autocannon';

export interface HttpRequest {
  path: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE';
  headers?: Record<string, string>;
  body?: string;
  /** Called before each request is sent, e.g. to sign it (autocannon's `setupRequest`). */
  setupRequest?: (request: autocannon.Request) => autocannon.Request;
  /**
   * Called before each run, outside its timed window, with its length (or its exact number of requests):
   * e.g. to sign the run's assertions ahead (presigned.ts).
   */
  prepare?: (run: { seconds: number; requests?: number }) => void;
  /** Called after each run, when autocannon has stopped sending: what `prepare` began ends here. */
  finish?: () => void;
  /**
   * Bytes a good body may differ from the probe's (default 0): writes answer with ids and counts whose
   * digits grow, or `favorited` true or false. Keep it far below the size of an error body.
   */
  bodySlack?: number;
}

export interface HttpTarget {
  url: string;
  /** Requests taken in turn; each may have its own path, method, headers and body. */
  requests: HttpRequest[];
}

/** Answers that did not count as throughput, by why. */
export interface Rejected {
  /** Answered, but not 2xx. */
  status: number;
  /** 2xx, but a body of another size than a good one. */
  size: number;
  /** No answer: socket errors and timeouts. */
  failed: number;
}

export interface LoadResult {
  /** Good answers (or operations) per second over the run. */
  rps: number;
  p50: number;
  p99: number;
  /** Good answers (or operations) in all. */
  requests: number;
  /** Everything that was not a good answer: the sum of `rejected`. */
  errors: number;
  rejected?: Rejected;
}

export interface LoadOptions {
  seconds: number;
  connections: number;
}

/** The body size of a good answer to each request of a target, probed once per target. */
const goodSizes = new WeakMap<HttpTarget, number[]>();

/** Sends each request once (as autocannon would, `setupRequest` included) and keeps its body's size. */
export async function probeBodySizes(target: HttpTarget): Promise<number[]> {
  const known = goodSizes.get(target);
  if (known) return known;
  const sizes: number[] = [];
  for (const request of target.requests) {
    const base = { method: request.method ?? 'GET', path: request.path, headers: request.headers ?? {} };
    const sent = request.setupRequest ? request.setupRequest({ ...base } as autocannon.Request) : base;
    const res = await fetch(`${target.url}${sent.path ?? request.path}`, {
      method: sent.method ?? base.method,
      headers: (sent.headers ?? {}) as Record<string, string>,
      ...(request.body ? { body: request.body } : {}),
    });
    const body = Buffer.from(await res.arrayBuffer());
    if (!res.ok)
      throw new Error(`probe ${base.method} ${target.url}${request.path}: ${res.status} ${body.toString()}`);
    sizes.push(body.length);
  }
  goodSizes.set(target, sizes);
  return sizes;
}

/** The target's requests, each counting its answers into `rejected` or `good`. */
function counted(target: HttpTarget, sizes: number[], tally: Rejected & { good: number }) {
  return target.requests.map((request, i) => {
    const { path, method, headers, body, setupRequest, bodySlack = 0 } = request;
    const size = sizes[i] as number;
    return {
      path,
      ...(method ? { method } : {}),
      ...(headers ? { headers } : {}),
      ...(body !== undefined ? { body } : {}),
      ...(setupRequest ? { setupRequest } : {}),
      onResponse: (status: number, body: string) => {
        if (status < 200 || status > 299) tally.status += 1;
        else if (Math.abs(Buffer.byteLength(body) - size) > bodySlack) tally.size += 1;
        else tally.good += 1;
      },
    };
  });
}

async function run(
  target: HttpTarget,
  opts: LoadOptions & { rate?: number; amount?: number },
): Promise<LoadResult> {
  const sizes = await probeBodySizes(target);
  for (const request of target.requests)
    request.prepare?.({
      seconds: opts.seconds,
      ...(opts.amount ? { requests: Math.ceil(opts.amount / target.requests.length) + 1 } : {}),
    });
  const tally = { good: 0, status: 0, size: 0, failed: 0 };
  let r: autocannon.Result;
  try {
    r = await autocannon({
      url: target.url,
      connections: opts.connections,
      ...(opts.amount ? { amount: opts.amount } : { duration: opts.seconds }),
      requests: counted(target, sizes, tally),
      // autocannon checks its end at each sample: at its default of one per second, a 0.4 s run would
      // last a second (the rate stays right, being divided by the real duration, but the time is lost).
      sampleInt: 100,
      ...(opts.rate ? { overallRate: opts.rate } : {}),
    });
  } finally {
    for (const request of target.requests) request.finish?.();
  }
  tally.failed = r.errors + r.timeouts;
  const rejected = { status: tally.status, size: tally.size, failed: tally.failed };
  return {
    rps: Math.round(tally.good / Math.max(r.duration, 0.001)),
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: tally.good,
    errors: rejected.status + rejected.size + rejected.failed,
    rejected,
  };
}

/** The maximum: a warm-up of `warmupSeconds`, then `seconds` measured. */
export async function measure(
  target: HttpTarget,
  opts: LoadOptions & { warmupSeconds: number },
): Promise<LoadResult> {
  if (opts.warmupSeconds > 0) await run(target, { ...opts, seconds: opts.warmupSeconds });
  return run(target, opts);
}

/**
 * Exactly `amount` requests over one connection, one at a time: for counting what each request costs
 * elsewhere (autocannon's duration-based totals are built from per-second samples and drift).
 */
export function exactly(target: HttpTarget, amount: number): Promise<LoadResult> {
  return run(target, { connections: 1, seconds: 0, amount });
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
export function percentiles(latencies: number[]): { p50: number; p99: number } {
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Number((latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0).toFixed(2));
  return { p50: at(0.5), p99: at(0.99) };
}
