/**
 * A distributed lock on Redis for work that must run once across every instance (design.md: `SET NX PX`
 * with a random token, release and extend by compare-and-set in Lua, a fencing counter).
 *
 * - `acquire(name)` sets the lease to a random token with `NX PX` and, in the same script, increments
 *   the lock's fencing counter: every successful acquire gets a larger number than any before it.
 * - Waiting is bounded: a busy lock is retried after a jittered delay (so contenders do not retry in
 *   lockstep) until `waitMs` has passed, then `acquire` resolves to null.
 * - While held, the lease is extended every third of its time. When an extension finds the lease gone
 *   or someone else's (the holder paused longer than the lease: a GC pause, a stopped process, a slow
 *   network), `lease.signal` aborts: the holder must stop. Extension failing because Redis is away
 *   aborts too, as the lease may expire meanwhile.
 * - `release()` deletes the lease only if it still holds our token. (The seed's `finally { del(key) }`
 *   deleted whatever lease was there, typically the next holder's once ours had expired.)
 * - A lease can always be lost without its holder noticing in time, so writes that must not happen
 *   twice check `lease.fence` where they are stored (see `advanceFence`): a write carrying a smaller
 *   fence than one already seen is refused.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { ACQUIRE, EXTEND, NOT_HELD, RELEASE } from './scripts.ts';

export interface AcquireOptions {
  /** How long the lease lives without being extended, in ms. */
  ttlMs: number;
  /** How long to keep trying while the lock is busy; 0 (the default) tries once. */
  waitMs?: number;
  /** The mean delay between tries, in ms (default 100); each delay is jittered by ±50%. */
  retryDelayMs?: number;
  /** Extend the lease while held (default true). */
  autoExtend?: boolean;
}

export interface Lease {
  readonly name: string;
  /** The fencing token: larger than that of every earlier holder of this lock. */
  readonly fence: number;
  /** Aborts when the lease is lost (found expired or taken over when extending). */
  readonly signal: AbortSignal;
  /** Pushes the expiry out to `ttlMs` from now; false (and `signal` aborted) when no longer ours. */
  extend(ttlMs?: number): Promise<boolean>;
  /** Deletes the lease if it is still ours; true when it was. Stops auto-extension either way. */
  release(): Promise<boolean>;
}

export class LockClient {
  private readonly redis: RedisClient;
  private readonly keys: Keys;

  /** `redis` must be a client of the queue instance (noeviction: a lease is never evicted early). */
  constructor(redis: RedisClient, keys: Keys) {
    this.redis = redis;
    this.keys = keys;
  }

  /** Tries to take the lock, waiting up to `waitMs`; the lease, or null if it stayed busy. */
  async acquire(name: string, opts: AcquireOptions): Promise<Lease | null> {
    const token = randomBytes(16).toString('base64url');
    const lease = this.keys.lock(name);
    const deadline = Date.now() + (opts.waitMs ?? 0);
    const meanDelay = opts.retryDelayMs ?? 100;
    for (;;) {
      const fence = Number(
        await ACQUIRE.run(this.redis, [lease, this.keys.lockFence(name)], token, opts.ttlMs),
      );
      if (fence !== NOT_HELD) return this.held(name, lease, token, fence, opts);
      const left = deadline - Date.now();
      if (left <= 0) return null;
      // ±50% jitter: contenders that collided once do not collide again on every retry.
      await delay(Math.min(left, meanDelay * (0.5 + Math.random())));
    }
  }

  /**
   * Runs `work` under the lock; `{ acquired: false }` when it stayed busy. The lease is released
   * afterwards whatever happens (and only if it is still ours).
   */
  async withLock<T>(
    name: string,
    opts: AcquireOptions,
    work: (lease: Lease) => Promise<T>,
  ): Promise<{ acquired: true; value: T } | { acquired: false }> {
    const lease = await this.acquire(name, opts);
    if (!lease) return { acquired: false };
    try {
      return { acquired: true, value: await work(lease) };
    } finally {
      await lease.release().catch(() => false);
    }
  }

  private held(name: string, key: string, token: string, fence: number, opts: AcquireOptions): Lease {
    const controller = new AbortController();
    const redis = this.redis;
    let timer: NodeJS.Timeout | undefined;
    const extend = async (ttlMs = opts.ttlMs): Promise<boolean> => {
      if (controller.signal.aborted) return false;
      let ok = false;
      try {
        ok = Number(await EXTEND.run(redis, [key], token, ttlMs)) !== NOT_HELD;
      } catch {
        ok = false; // RedisClient away: the lease may run out meanwhile, so it counts as lost.
      }
      if (!ok) {
        clearInterval(timer);
        controller.abort(new Error(`lock ${name} lost`));
      }
      return ok;
    };
    if (opts.autoExtend ?? true) {
      timer = setInterval(() => void extend(), Math.max(10, Math.floor(opts.ttlMs / 3)));
      timer.unref();
    }
    return {
      name,
      fence,
      signal: controller.signal,
      extend,
      async release() {
        clearInterval(timer);
        const released = Number(await RELEASE.run(redis, [key], token)) !== NOT_HELD;
        if (!controller.signal.aborted) controller.abort(new Error(`lock ${name} released`));
        return released;
      },
    };
  }
}
