/**
 * Admission for password hashing: at most `concurrency` hashes or verifications run at once, at most
 * `queue` more wait for a turn, and anything beyond is refused at once with 503 `AUTH_HASHING_BUSY` and a
 * Retry-After. Each Argon2id hash holds its memory (64 MiB by default) and a libuv thread for its whole
 * run; unbounded, a burst of logins or password changes queues on libuv's four threads behind each other
 * and behind everything else that uses them (DNS, files), and every login waits seconds. Bounded, a
 * burst costs the requests beyond the queue a quick 503 and the service stays responsive.
 */
import { AppError } from '@atoll/service-kit';

export interface HashPoolSettings {
  /** Hashes or verifications running at once. */
  concurrency: number;
  /** Operations that may wait for a turn; beyond it, 503. */
  queue: number;
  /**
   * Operations one client (an IPv4 address or IPv6 /64) may have running or waiting at once; beyond it,
   * 503 for that client only, so one place cannot take every slot and queue place from everyone else.
   */
  perClient: number;
}

export function hashingBusy(retryAfterS: number): AppError {
  return new AppError('AUTH_HASHING_BUSY', undefined, { 'retry-after': String(retryAfterS) });
}

export const isHashingBusy = (err: unknown): boolean =>
  err instanceof AppError && err.code === 'AUTH_HASHING_BUSY';

/**
 * Runs the check of a counted attempt (login-limiter.ts): refused for a busy pool, the secret was never
 * checked, so the attempt is given back before the 503 goes out. Only a checked secret counts.
 */
export async function checkedUnlessBusy<T>(
  attempt: { abandoned(): Promise<void> },
  check: () => Promise<T>,
): Promise<T> {
  try {
    return await check();
  } catch (err) {
    if (isHashingBusy(err)) await attempt.abandoned();
    throw err;
  }
}

export class HashPool {
  private readonly settings: HashPoolSettings;
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  /** A moving average of how long one operation takes, for Retry-After. */
  private averageMs = 50;
  /** Operations running or waiting, per client that has any. */
  private readonly byClient = new Map<string, number>();

  constructor(settings: HashPoolSettings) {
    if (!Number.isInteger(settings.concurrency) || settings.concurrency < 1) {
      throw new RangeError('the hashing pool needs a concurrency of at least 1');
    }
    if (!Number.isInteger(settings.queue) || settings.queue < 0) {
      throw new RangeError('the hashing pool queue must be 0 or more');
    }
    if (!Number.isInteger(settings.perClient) || settings.perClient < 1) {
      throw new RangeError('the hashing pool needs at least 1 operation per client');
    }
    this.settings = { ...settings };
  }

  /** Operations running and waiting now. */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waiting.length };
  }

  /**
   * Throws AUTH_HASHING_BUSY now when an operation asked for now would be refused: a request that will
   * need a hash is turned away before it costs a database or Redis round trip. (`run` decides again.)
   */
  admit(client: string | null = null): void {
    const full = this.active >= this.settings.concurrency && this.waiting.length >= this.settings.queue;
    const clientFull = client !== null && (this.byClient.get(client) ?? 0) >= this.settings.perClient;
    if (full || clientFull) throw hashingBusy(this.retryAfterS());
  }

  /**
   * Runs `work` for `client` (null: no per-client share, e.g. at start-up) when a slot is free; throws
   * AUTH_HASHING_BUSY at once when the queue, or the client's share, is full.
   */
  async run<T>(work: () => Promise<T>, client: string | null = null): Promise<T> {
    this.admit(client);
    if (client !== null) this.byClient.set(client, (this.byClient.get(client) ?? 0) + 1);
    try {
      if (this.active < this.settings.concurrency) {
        this.active += 1;
      } else {
        // The slot is handed over by the operation that ends (`active` stays as it is).
        await new Promise<void>((resolve) => this.waiting.push(resolve));
      }
      const started = performance.now();
      try {
        return await work();
      } finally {
        this.averageMs = 0.8 * this.averageMs + 0.2 * (performance.now() - started);
        const next = this.waiting.shift();
        if (next) next();
        else this.active -= 1;
      }
    } finally {
      if (client !== null) {
        const left = (this.byClient.get(client) ?? 1) - 1;
        if (left > 0) this.byClient.set(client, left);
        else this.byClient.delete(client);
      }
    }
  }

  /** Whole seconds until the queue has drained at the recent pace; at least 1. */
  private retryAfterS(): number {
    const ahead = this.active + this.waiting.length;
    return Math.max(1, Math.ceil((ahead * this.averageMs) / this.settings.concurrency / 1000));
  }
}
