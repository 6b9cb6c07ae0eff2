/**
 * A request to a service that the load generator signs as the gateway would, with its assertions made
 * before each run instead of while it runs.
 *
 * A service accepts only requests the gateway signed, each assertion once. Signed in `setupRequest`, each
 * request cost the load generator an Ed25519 signature, on the same two cores as the service: the
 * service's rate then carried the gateway's work, and its reference (a bare server, nothing signed) did
 * not. `prepare` signs enough assertions for the run ahead before autocannon starts its clock: twice what
 * the last run used per second (or half the estimate before it, whichever is more: a warm-up is slower
 * than the run after it); a run that uses them all signs the rest inline and counts
 * them (`inline`), so a short pool shows in the report instead of passing silently. Only what is sent
 * between `prepare` and `finish` counts: a probe before a run, or a request autocannon builds after it
 * stopped, is signed as it comes and counted nowhere.
 *
 * An assertion lives 5 s past the second it was made in, and services allow 5 s of clock skew: the pool
 * is made again for every run (warm-up, timed run, half-load run), oldest first, so none is used more
 * than a few seconds after it was signed.
 */
import { performance } from 'node:perf_hooks';
import type autocannon from 'autocannon';

export type Sign = (request: { method: string; url: string }) => Record<string, string>;
/** Signs `requests` as the gateway does the assertions of one turn of its event loop: one signature. */
export type SignBatch = (requests: Array<{ method: string; url: string }>) => Array<Record<string, string>>;

/** What a first run is expected to need per second, before a rate was seen. */
const FIRST_RATE = 12_000;
/** Assertions made beyond the expected need. */
const MARGIN = 2;

export class PresignedRequest {
  readonly path: string;
  readonly method = 'GET' as const;
  /** Requests that found the pool empty and were signed while the run went on. */
  inline = 0;
  private readonly sign: Sign;
  private readonly batch: { size: number; sign: SignBatch } | undefined;
  private pool: Array<Record<string, string>> = [];
  private next = 0;
  private used = 0;
  private startedAt = 0;
  private running = false;
  private lastUsedAt = 0;
  private perSecond = FIRST_RATE;

  /**
   * `firstRate`: the requests per second a first run is signed for (before any rate was seen). `batch`:
   * the pool is signed `size` assertions per signature, as the gateway signs a turn's assertions
   * together; without it, and for what is signed inline, one signature each.
   */
  constructor(
    path: string,
    sign: Sign,
    opts: { firstRate?: number; batch?: { size: number; sign: SignBatch } } = {},
  ) {
    this.path = path;
    this.sign = sign;
    this.batch = opts.batch;
    this.perSecond = opts.firstRate ?? FIRST_RATE;
  }

  /** Signs for a run of `seconds`, or of exactly `requests` requests when that is known. */
  prepare(run: { seconds: number; requests?: number }): void {
    this.settle();
    const count = run.requests ?? Math.ceil(this.perSecond * run.seconds * MARGIN) + 100;
    const target = { method: this.method, url: this.path };
    if (this.batch) {
      const { size, sign } = this.batch;
      this.pool = [];
      for (let made = 0; made < count; made += size)
        this.pool.push(...sign(Array.from({ length: Math.min(size, count - made) }, () => target)));
    } else {
      this.pool = Array.from({ length: count }, () => this.sign(target));
    }
    this.next = 0;
    this.used = 0;
    this.startedAt = performance.now();
    this.running = true;
  }

  /** The run is over: what is signed from now on is no part of it. */
  finish(): void {
    this.running = false;
  }

  /** autocannon's hook: the next assertion of the pool, or one signed now when the pool is spent. */
  readonly setupRequest = (req: autocannon.Request): autocannon.Request => {
    const ahead = this.running ? this.pool[this.next] : undefined;
    if (ahead) this.next += 1;
    const headers = ahead ?? this.sign({ method: this.method, url: this.path });
    if (this.running) {
      if (!ahead) this.inline += 1;
      this.used += 1;
      this.lastUsedAt = performance.now();
    }
    req.headers = { ...req.headers, ...headers };
    return req;
  };

  /** Learns the rate the last run used assertions at, for the next pool's size. */
  private settle(): void {
    const seconds = (this.lastUsedAt - this.startedAt) / 1000;
    // A warm-up runs slower than the run after it: the estimate falls at most by half at a time.
    if (this.startedAt > 0 && this.used > 0 && seconds > 0)
      this.perSecond = Math.max(this.used / seconds, this.perSecond / 2);
  }
}
