/**
 * Memory given back at rest. Under load V8 grows its old generation and keeps the pages it frees in a
 * pool; it returns both at its next memory-reducing full collection. A service at rest allocates too
 * little to reach one, and V8's own memory reducer did not run one for the gateway or content: 15 s after
 * 40 s of load they held 270 and 258 MiB, and still did a minute later. With this (incremental, as
 * below), 20 s after 30 s of load the gateway held 112–124 MiB and content 116–123 in three runs
 * (bench/README.md, "Memory").
 *
 * So every `intervalMs` the service looks at the interval behind it. If its event loop was busy less
 * than `idleUtilization` of it, and its RSS is `growthBytes` above what it was after the last collection
 * run here (none yet: any RSS), it runs one full collection. A busy service never runs one; a service at
 * rest runs one, then none until it has grown again.
 *
 * The collection is V8's memory-reducing one (`flavor: 'last-resort'`): a plain full collection shrank
 * a test heap from 221 to 14 MiB but left the RSS at 237 of 272 MiB, pages in V8's pool; this one took
 * it to 57. It runs incrementally (`execution: 'async'`), in V8's tasks between the service's own
 * work: run at once (`'sync'`) it paused the four services 83–163 ms each; incrementally, a test heap
 * of 337 MiB went to 84 MiB within 2 s with the event loop never delayed more than 12 ms. Its result
 * is read one interval later. It needs `gc`, which Node exposes with `--expose-gc` (in the services'
 * Node options). Without it nothing runs.
 */
import { performance } from 'node:perf_hooks';

export interface RestGcOptions {
  /** Told about each collection (at info) and, once, that there is no `gc` to run. */
  log: { info: (obj: object, msg: string) => void };
  intervalMs?: number;
  /** The event loop's busy share of an interval below which the service counts as at rest. */
  idleUtilization?: number;
  /** RSS growth since the last collection run here that makes another worth running. */
  growthBytes?: number;
  /** The collection to run; absent: `globalThis.gc`, asked for a memory-reducing full collection. */
  gc?: (() => void) | undefined;
  /** The resident set size now; default `process.memoryUsage.rss`. */
  rss?: () => number;
}

export const REST_GC_DEFAULTS = { intervalMs: 5_000, idleUtilization: 0.05, growthBytes: 24 * 2 ** 20 };

type V8Gc = (options?: { type: 'major'; execution: 'async'; flavor: 'last-resort' }) => void;

const exposedGc = (): (() => void) | undefined => {
  const gc = (globalThis as { gc?: V8Gc }).gc;
  return gc && (() => gc({ type: 'major', execution: 'async', flavor: 'last-resort' }));
};

/** Starts the checks (their timer does not keep the process alive); returns what stops them. */
export function startRestGc(opts: RestGcOptions): () => void {
  const gc = 'gc' in opts ? opts.gc : exposedGc();
  if (!gc) {
    opts.log.info({}, 'no collection at rest: Node runs without --expose-gc');
    return () => {};
  }
  const { intervalMs, idleUtilization, growthBytes } = { ...REST_GC_DEFAULTS, ...opts };
  const rss = opts.rss ?? (() => process.memoryUsage.rss());
  let last = performance.eventLoopUtilization();
  let restingRss = 0;
  /** The RSS when the collection in flight was started; its result is read at the next interval. */
  let collecting: number | undefined;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const busy = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    if (collecting !== undefined) {
      restingRss = rss();
      opts.log.info({ rssBefore: collecting, rssAfter: restingRss }, 'full collection at rest');
      collecting = undefined;
      return;
    }
    const current = rss();
    if (busy >= idleUtilization || current < restingRss + growthBytes) return;
    collecting = current;
    gc();
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
