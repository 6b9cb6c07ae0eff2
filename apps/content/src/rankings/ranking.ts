/**
 * A ranking kept as a Sorted Set on redis-cache, rebuildable from PostgreSQL at any time (the cache
 * instance evicts, and losing it must change no answer):
 * - reads take a page with ZREVRANGE; a missing set is rebuilt from `load()` by one instance at a time (a
 *   short lease, @atoll/lock `tryLease`, left to run out), written with MULTI (DEL, ZADD, PEXPIRE with
 *   jitter) so it never exists without its TTL; the others wait briefly for it, then answer from PostgreSQL
 *   directly;
 * - writes adjust one member only while the set exists (update-if-present.lua);
 * - with redis-cache unreachable, every read answers from PostgreSQL and writes are skipped.
 * A member's score can lag by a write that raced a rebuild; the TTL bounds that to one period.
 */
import { tryLease } from '@atoll/lock';
import { isRedisUnavailable, oneSlotMulti, type RedisClient } from '@atoll/redis';
import { UPDATE_IF_PRESENT } from './ranking.lua.ts';

export type Entry = { member: string; score: number };

export interface RankingOptions {
  redis: RedisClient;
  key: string;
  leaseKey: string;
  /** How long the rebuild lease lives. */
  leaseMs: number;
  ttlMs: number;
  /** The whole ranking from PostgreSQL, best first. */
  load: () => Promise<Entry[]>;
  log: { warn(obj: object, msg?: string): void };
}

export class Ranking {
  private readonly redis: RedisClient;
  private readonly opts: RankingOptions;

  constructor(opts: RankingOptions) {
    this.redis = opts.redis;
    this.opts = opts;
  }

  /** A page of the ranking, best first, and the number of members. */
  async page(offset: number, limit: number): Promise<{ entries: Entry[]; total: number }> {
    const slice = (all: Entry[]) => ({ entries: all.slice(offset, offset + limit), total: all.length });
    try {
      const cached = await this.readPage(offset, limit);
      if (cached) return cached;
      const rebuilt = await this.rebuild();
      if (rebuilt) return slice(rebuilt);
      // Another instance is rebuilding: give it a moment, then do without.
      await new Promise((r) => setTimeout(r, 50));
      const after = await this.readPage(offset, limit);
      if (after) return after;
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      this.opts.log.warn({ key: this.opts.key }, 'redis-cache unavailable: ranking read from PostgreSQL');
    }
    return slice(await this.opts.load());
  }

  private async readPage(offset: number, limit: number): Promise<{ entries: Entry[]; total: number } | null> {
    const [range, total] = ((await oneSlotMulti(this.redis, 'ranking page', [this.opts.key])
      .zrevrange(this.opts.key, offset, offset + limit - 1, 'WITHSCORES')
      .zcard(this.opts.key)
      .exec()) ?? []) as Array<[Error | null, unknown]>;
    const count = Number(total?.[1] ?? 0);
    if (count === 0 && !(await this.redis.exists(this.opts.key))) return null;
    const flat = (range?.[1] ?? []) as string[];
    const entries: Entry[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2)
      entries.push({ member: flat[i] as string, score: Number(flat[i + 1]) });
    return { entries, total: count };
  }

  /**
   * Rebuilds the set if this instance gets the lease and returns what it loaded; null otherwise. The
   * lease is not released: while it lives, the others read PostgreSQL rather than rebuild again (an
   * empty ranking leaves no set behind).
   */
  private async rebuild(): Promise<Entry[] | null> {
    if (!(await tryLease(this.redis, this.opts.leaseKey, this.opts.leaseMs))) return null;
    return this.refresh();
  }

  /**
   * Replaces the whole set with what PostgreSQL holds now, in one MULTI (readers see the old set or the
   * new one, never a half-written one). The scheduled recompute calls it: it corrects any score that
   * lagged behind a write which raced a rebuild.
   */
  async refresh(): Promise<Entry[]> {
    const entries = await this.opts.load();
    const jitter = Math.floor(Math.random() * this.opts.ttlMs * 0.1);
    const tx = oneSlotMulti(this.redis, 'ranking refresh', [this.opts.key]).del(this.opts.key);
    if (entries.length > 0) {
      tx.zadd(this.opts.key, ...entries.flatMap((e) => [String(e.score), e.member]));
      tx.pexpire(this.opts.key, this.opts.ttlMs + jitter);
    }
    await tx.exec();
    return entries;
  }

  /** Removes a member (a deleted article); ZREM never creates the set. */
  async remove(member: string): Promise<void> {
    try {
      await this.redis.zrem(this.opts.key, member);
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
    }
  }

  /** Changes one member's score while the set exists; skipped when redis-cache is unreachable. */
  async adjust(member: string, op: 'incr' | 'set', value: number): Promise<void> {
    try {
      await UPDATE_IF_PRESENT.run(this.redis, [this.opts.key], op, member, String(value));
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
    }
  }
}
