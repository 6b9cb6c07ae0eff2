/**
 * Admission for password hashing: at most `concurrency` hashes or verifications run at once, at most
 * `queue` more wait for a turn, and anything beyond is refused at once with 503 `AUTH_HASHING_BUSY` and a
 * Retry-After. Each Argon2id hash holds its memory (64 MiB by default) and a libuv thread for its whole
 * run; unbounded, a burst of logins or password changes queues on libuv's four threads behind each other
 * and behind everything else that uses them (DNS, files), and every login waits seconds. Bounded, a
 * burst costs the requests beyond the queue a quick 503 and the service stays responsive.
 *
 * Two kinds of work share it. Checks of a password someone already has (login, re-authentication) may
 * use every place; new hashes (sign-up, password change, reset, the rehash after a login) hold at most
 * `newHashes` places, and a check waiting for a slot goes before any new hash. So no flood of sign-ups
 * can take the pool from the people signing in: a login finds a place and the next free slot.
 *
 * A client's share is counted at every network it is in (`clientNetworks`: an IPv4 address and its /24,
 * an IPv6 /64, /56 and /48), each with the same ceiling: a site that holds thousands of /64s, or a
 * handful of neighbouring addresses, gets one share, not one per address.
 */
import { AppError } from '@atoll/service-kit';

export interface HashPoolSettings {
  /** Hashes or verifications running at once. */
  concurrency: number;
  /** Operations that may wait for a turn; beyond it, 503. */
  queue: number;
  /**
   * Operations one client may have running or waiting at once, counted at each of its networks (an IPv4
   * address and its /24, an IPv6 /64, /56 and /48); beyond it, 503 for that client only, so one place
   * cannot take every slot and queue place from everyone else.
   */
  perClient: number;
  /**
   * New hashes (sign-up, password change, reset) running or waiting at once; the other places are kept
   * for checks (login, re-authentication). At least 1.
   */
  newHashes: number;
  /**
   * How long an operation may wait for a slot before it is refused with 503 after all (default 4 s):
   * on a machine slower than the queue was sized for, a sign-up or login answers "busy, retry" well
   * before the gateway gives up on it (504 after UPSTREAM_TIMEOUT_MS, 10 s).
   */
  maxWaitMs?: number;
}

/** A check of a password someone has (login, re-authentication), or a new hash (sign-up, change, reset). */
export type HashKind = 'check' | 'new';

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
  /** Waiting for a slot: checks first, then new hashes. */
  private readonly waiting: { check: Array<() => void>; new: Array<() => void> } = { check: [], new: [] };
  private readonly maxWaitMs: number;
  /** New hashes running or waiting. */
  private newCount = 0;
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
    if (!Number.isInteger(settings.newHashes) || settings.newHashes < 1) {
      throw new RangeError('the hashing pool needs room for at least 1 new hash');
    }
    this.settings = { ...settings };
    this.maxWaitMs = settings.maxWaitMs ?? 4000;
  }

  /** Operations running and waiting now. */
  get load(): { active: number; waiting: number } {
    return { active: this.active, waiting: this.waitingCount() };
  }

  private waitingCount(): number {
    return this.waiting.check.length + this.waiting.new.length;
  }

  /**
   * Throws AUTH_HASHING_BUSY now when an operation of `kind` for a client in `networks` (its address
   * and the networks around it, `clientNetworks`; none: no share, e.g. at start-up) asked for now would
   * be refused: a request that will need a hash is turned away before it costs a database or Redis
   * round trip. (`run` decides again.)
   */
  admit(networks: readonly string[] = [], kind: HashKind = 'check'): void {
    const full = this.active >= this.settings.concurrency && this.waitingCount() >= this.settings.queue;
    const newFull = kind === 'new' && this.newCount >= this.settings.newHashes;
    const clientFull = networks.some((n) => (this.byClient.get(n) ?? 0) >= this.settings.perClient);
    if (full || newFull || clientFull) throw hashingBusy(this.retryAfterS());
  }

  /**
   * Runs `work` of `kind` for a client in `networks` when a slot is free; throws AUTH_HASHING_BUSY at
   * once when the queue, the room for new hashes, or the client's share at any of its networks is full.
   */
  async run<T>(
    work: () => Promise<T>,
    networks: readonly string[] = [],
    kind: HashKind = 'check',
  ): Promise<T> {
    this.admit(networks, kind);
    for (const n of networks) this.byClient.set(n, (this.byClient.get(n) ?? 0) + 1);
    if (kind === 'new') this.newCount += 1;
    try {
      if (this.active < this.settings.concurrency) {
        this.active += 1;
      } else {
        // The slot is handed over by the operation that ends (`active` stays as it is), unless the
        // wait outlasts maxWaitMs: then this one leaves the queue and is refused.
        await this.turn(kind);
      }
      const started = performance.now();
      try {
        return await work();
      } finally {
        this.averageMs = 0.8 * this.averageMs + 0.2 * (performance.now() - started);
        // Checks first: a login waits for one running operation at most, never behind a flood of sign-ups.
        const next = this.waiting.check.shift() ?? this.waiting.new.shift();
        if (next) next();
        else this.active -= 1;
      }
    } finally {
      if (kind === 'new') this.newCount -= 1;
      for (const n of networks) {
        const left = (this.byClient.get(n) ?? 1) - 1;
        if (left > 0) this.byClient.set(n, left);
        else this.byClient.delete(n);
      }
    }
  }

  /** Waits in the queue of `kind` for a slot handed over; AUTH_HASHING_BUSY after maxWaitMs. */
  private turn(kind: HashKind): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const queue = this.waiting[kind];
      const handOver = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        const at = queue.indexOf(handOver);
        if (at < 0) return; // handed over meanwhile
        queue.splice(at, 1);
        reject(hashingBusy(this.retryAfterS()));
      }, this.maxWaitMs);
      queue.push(handOver);
    });
  }

  /** Whole seconds until the queue has drained at the recent pace; at least 1. */
  private retryAfterS(): number {
    const ahead = this.active + this.waitingCount();
    return Math.max(1, Math.ceil((ahead * this.averageMs) / this.settings.concurrency / 1000));
  }
}
