/**
 * The three-layer cache (design.md, "Caching"): L1 a bounded in-process LRU, L2 redis-cache, L3 the
 * loader (PostgreSQL).
 *
 * - Every entry has a TTL with jitter and a grace period after it: within the grace a stale value is
 *   served when the loader fails (PostgreSQL slow or down), never after.
 * - One loader per key at a time: in-process by single-flight, across instances by a short Redis lease
 *   (@atoll/lock `tryLease`: SET NX PX, one round trip); an instance that finds the lease taken waits
 *   for the value to appear in L2.
 * - Invalidation by dependency: an entry lists the tags it depends on (`article:42`, `articles`);
 *   `invalidate({ tags })` deletes every L2 entry of those tags and tells every instance over pub/sub to
 *   drop them from L1. L1 is dropped whole whenever the bus (re)connects, since messages may have been
 *   missed meanwhile, and is used again only once a probe this instance published has come back over the
 *   bus (`confirmBus`).
 * - Values whose JSON is larger than `maxValueBytes` are not cached (counted, logged once per id).
 * - With redis-cache unreachable, reads fall through to the loader (no errors); L1 keeps working.
 *
 * Why not bentocache: it declares ioredis 5 as its peer (atoll runs ioredis 6 with RESP3), builds its
 * own key and channel names rather than taking them from @atoll/redis-keys (hash tags, per-instance TTL
 * rules), and its stampede protection is per process, where atoll also needs a lease across instances.
 */
import { randomUUID } from 'node:crypto';
import { type ShortLease, tryLease } from '@atoll/lock';
import {
  isCluster,
  isRedisUnavailable,
  mgetAcrossSlots,
  oneSlotMulti,
  publish,
  type RedisClient,
  subscribeAgain,
  watchChannel,
} from '@atoll/redis';
import { KEY_SPECS, type Keys } from '@atoll/redis-keys';
import { Lru } from './lru.ts';
import { isTombstone, STORE_UNLESS_INVALIDATED } from './scripts.lua.ts';

export interface LayeredCacheOptions {
  /** Producer client on redis-cache (fails fast when it is away). */
  redis: RedisClient;
  /** A dedicated subscriber client on redis-cache, for the invalidation bus. */
  subscriber: RedisClient;
  keys: Keys;
  namespace: string;
  ttlMs: number;
  graceMs: number;
  l1MaxEntries?: number;
  /** L1 keeps an entry at most this long, so a missed invalidation heals by itself. */
  l1TtlMs?: number;
  leaseMs?: number;
  maxValueBytes?: number;
  /** How long an invalidated entry refuses values loaded before the write (above any query's timeout). */
  tombstoneMs?: number;
  /** Which loader errors may be answered with a stale value (default: all; e.g. only "database down"). */
  staleOn?: (err: unknown) => boolean;
  log: { warn(obj: object, msg?: string): void };
}

interface Entry {
  value: unknown;
  freshUntil: number;
  staleUntil: number;
  tags: string[];
}

interface Stored {
  v: unknown;
  f: number;
  t: string[];
}

export interface CacheStats {
  l1Hits: number;
  l2Hits: number;
  loads: number;
  staleServed: number;
  tooLarge: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class LayeredCache {
  readonly stats: CacheStats = { l1Hits: 0, l2Hits: 0, loads: 0, staleServed: 0, tooLarge: 0 };
  private readonly opts: Required<Omit<LayeredCacheOptions, 'log'>> & Pick<LayeredCacheOptions, 'log'>;
  private readonly l1: Lru<Entry>;
  /** L1's ids by tag, kept in step with it, so that dropping a tag touches only the entries it names. */
  private readonly l1ByTag = new Map<string, Set<string>>();
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly instanceId = randomUUID();
  private readonly tooLargeLogged = new Set<string>();

  constructor(opts: LayeredCacheOptions) {
    this.opts = {
      l1MaxEntries: 1000,
      l1TtlMs: 60_000,
      leaseMs: KEY_SPECS.cacheLease.ttlMs,
      maxValueBytes: 64 * 1024,
      tombstoneMs: 10_000,
      staleOn: () => true,
      ...opts,
    };
    this.l1 = new Lru(this.opts.l1MaxEntries, (id, entry) => {
      for (const tag of entry.tags) {
        const ids = this.l1ByTag.get(tag);
        if (ids?.delete(id) && ids.size === 0) this.l1ByTag.delete(tag);
      }
    });
    // Invalidations that could not reach Redis are sent again as soon as it is back.
    opts.redis.on('ready', () => void this.retryPending());
  }

  private pending: Array<{ ids: string[]; tags: string[] }> = [];

  private async retryPending(): Promise<void> {
    const pending = this.pending;
    this.pending = [];
    for (const change of pending) await this.invalidate(change).catch(() => undefined);
  }

  /**
   * Subscribes to the invalidation bus. While the bus is down, invalidations from other instances
   * cannot arrive, so L1 is not used at all; it starts empty again when the bus is back.
   */
  async start(): Promise<void> {
    const { subscriber, keys } = this.opts;
    await watchChannel(subscriber, keys.cacheBus(), {
      message: (text) => this.onBusMessage(text),
      down: () => {
        this.busUp = false;
        this.probe = undefined;
        this.l1.clear();
      },
      up: () => void this.confirmBus(),
    });
    this.busUp = true;
  }

  private busUp = false;
  /** The probe `confirmBus` waits for, while it waits. */
  private probe: string | undefined;

  /**
   * Takes the bus back into use once a probe published on it has come back to this instance. The
   * client's word that it subscribed again is not enough: ioredis reports a cluster's sharded
   * subscribers ready before their SSUBSCRIBE is answered, and also when one of them could not connect
   * (it tries again later), so an L1 trusted then could miss invalidations for good. The probe is sent
   * again with a growing pause, at most a second; after 3, 6, 12, 24, … probes that did not come back,
   * the subscriber is asked to subscribe again (spaced out so, as ioredis's cluster client lists a channel
   * once more for each SSUBSCRIBE, that list grows only with the logarithm of a long outage). Until the
   * probe is back L1 stays unused. A `down` ends the wait.
   */
  private async confirmBus(): Promise<void> {
    const { redis, subscriber, keys, namespace } = this.opts;
    const probe = randomUUID();
    this.probe = probe;
    const message = JSON.stringify({ from: this.instanceId, ns: namespace, ids: [], tags: [], probe });
    for (let attempt = 0; this.probe === probe; attempt += 1) {
      if (attempt >= 3 && Number.isInteger(Math.log2(attempt / 3)))
        await subscribeAgain(subscriber, keys.cacheBus()).catch(() => undefined);
      await publish(redis, keys.cacheBus(), message).catch(() => undefined);
      await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)).unref());
    }
  }

  /** The value for `id`: from L1, else L2, else the loader (whose result is cached with `tags`). */
  async get<T>(
    id: string,
    load: () => Promise<T>,
    tags: string[] | ((value: T) => string[]) = [],
  ): Promise<T> {
    const now = Date.now();
    const local = this.busUp ? this.l1.get(id) : undefined;
    if (local && local.freshUntil > now) {
      this.stats.l1Hits += 1;
      return local.value as T;
    }
    const pending = this.inflight.get(id);
    if (pending) return pending as Promise<T>;
    const promise = this.fetch(id, load, tags, local).finally(() => this.inflight.delete(id));
    this.inflight.set(id, promise);
    return promise;
  }

  private async fetch<T>(
    id: string,
    load: () => Promise<T>,
    tagsOf: string[] | ((value: T) => string[]),
    local: Entry | undefined,
  ): Promise<T> {
    const { redis, keys, namespace, leaseMs } = this.opts;
    const key = keys.cacheEntry(namespace, id);
    let stale: Entry | undefined = local;
    let redisUp = true;
    let seenTombstone = '';
    let lease: ShortLease | null = null;
    try {
      const { entry: stored, tombstone } = await this.readL2(key);
      seenTombstone = tombstone;
      if (stored && stored.freshUntil > Date.now()) {
        this.stats.l2Hits += 1;
        this.putL1(id, stored);
        return stored.value as T;
      }
      if (stored && (!stale || stored.staleUntil > stale.staleUntil)) stale = stored;
      // One loader across instances: whoever takes the lease loads; the others wait for its result.
      lease = await tryLease(redis, keys.cacheLease(namespace, id), leaseMs);
      if (!lease) {
        for (let waited = 0; waited < leaseMs; waited += 25) {
          await sleep(25);
          const { entry: arrived } = await this.readL2(key);
          if (arrived && arrived.freshUntil > Date.now()) {
            this.stats.l2Hits += 1;
            this.putL1(id, arrived);
            return arrived.value as T;
          }
        }
      }
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      redisUp = false;
    }
    try {
      let value: T;
      try {
        this.stats.loads += 1;
        value = await load();
      } catch (err) {
        if (stale && stale.staleUntil > Date.now() && this.opts.staleOn(err)) {
          this.stats.staleServed += 1;
          return stale.value as T;
        }
        throw err;
      }
      const tags = typeof tagsOf === 'function' ? tagsOf(value) : tagsOf;
      await this.store(id, key, value, tags, redisUp ? seenTombstone : null);
      return value;
    } finally {
      // Whatever happened, the next loader need not wait for the lease to run out.
      await lease?.release().catch(() => undefined);
    }
  }

  /**
   * Many values at once (a list page): L1, then one round trip of MGETs on L2 (one per cluster slot),
   * then one call of `loadMany` for the rest — so a page costs the same number of queries whatever its
   * size. Ids `loadMany` does not return are absent from the result (and not cached). Unlike `get`,
   * there is no lease across instances: a batch is loaded by whoever misses it, and pages overlap too
   * little for a stampede.
   */
  async getMany<T>(
    ids: string[],
    loadMany: (missing: string[]) => Promise<Map<string, T>>,
    tagsOf: (value: T) => string[],
  ): Promise<Map<string, T>> {
    const { redis, keys, namespace } = this.opts;
    const found = new Map<string, T>();
    const stale = new Map<string, Entry>();
    const now = Date.now();
    let missing: string[] = [];
    for (const id of new Set(ids)) {
      const local = this.busUp ? this.l1.get(id) : undefined;
      if (local && local.freshUntil > now) {
        this.stats.l1Hits += 1;
        found.set(id, local.value as T);
      } else {
        if (local) stale.set(id, local);
        missing.push(id);
      }
    }
    if (missing.length === 0) return found;
    let tombstones: Map<string, string> | null = new Map();
    try {
      const raws = await mgetAcrossSlots(
        redis,
        missing.map((id) => keys.cacheEntry(namespace, id)),
      );
      const stillMissing: string[] = [];
      missing.forEach((id, i) => {
        const { entry, tombstone } = this.parseL2(raws[i] ?? null);
        if (entry && entry.freshUntil > Date.now()) {
          this.stats.l2Hits += 1;
          this.putL1(id, entry);
          found.set(id, entry.value as T);
          return;
        }
        if (entry) stale.set(id, entry);
        tombstones?.set(id, tombstone);
        stillMissing.push(id);
      });
      missing = stillMissing;
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      tombstones = null; // RedisClient is away: cache in L1 only
    }
    if (missing.length === 0) return found;
    let loaded: Map<string, T>;
    try {
      this.stats.loads += 1;
      loaded = await loadMany(missing);
    } catch (err) {
      const usable = missing.every((id) => (stale.get(id)?.staleUntil ?? 0) > Date.now());
      if (!usable || !this.opts.staleOn(err)) throw err;
      this.stats.staleServed += missing.length;
      for (const id of missing) found.set(id, stale.get(id)?.value as T);
      return found;
    }
    await Promise.all(
      [...loaded].map(([id, value]) => {
        found.set(id, value);
        return this.store(
          id,
          keys.cacheEntry(namespace, id),
          value,
          tagsOf(value),
          tombstones?.get(id) ?? null,
        );
      }),
    );
    return found;
  }

  /** The L2 entry, or the tombstone an invalidation left in its place. */
  private async readL2(key: string): Promise<{ entry?: Entry; tombstone: string }> {
    return this.parseL2(await this.opts.redis.get(key));
  }

  private parseL2(raw: string | null): { entry?: Entry; tombstone: string } {
    if (!raw) return { tombstone: '' };
    if (isTombstone(raw)) return { tombstone: raw };
    const stored = JSON.parse(raw) as Stored;
    return {
      entry: {
        value: stored.v,
        freshUntil: stored.f,
        staleUntil: stored.f + this.opts.graceMs,
        tags: stored.t,
      },
      tombstone: '',
    };
  }

  private putL1(id: string, entry: Entry): void {
    if (!this.busUp) return;
    // L1 never outlives L2's freshness, nor its own bound.
    const freshUntil = Math.min(entry.freshUntil, Date.now() + this.opts.l1TtlMs);
    const local = { ...entry, freshUntil };
    this.l1.set(id, local);
    if (this.l1.peek(id) !== local) return; // an L1 of no room keeps nothing
    for (const tag of local.tags) {
      const ids = this.l1ByTag.get(tag);
      if (ids) ids.add(id);
      else this.l1ByTag.set(tag, new Set([id]));
    }
  }

  /**
   * Caches a loaded value in L1 and, when Redis answered (`seenTombstone` not null), in L2 unless the
   * entry was invalidated after the load began.
   */
  private async store(
    id: string,
    key: string,
    value: unknown,
    tags: string[],
    seenTombstone: string | null,
  ): Promise<void> {
    const { redis, keys, ttlMs, graceMs, maxValueBytes, namespace } = this.opts;
    const jitteredTtl = Math.round(ttlMs * (0.9 + Math.random() * 0.2));
    const freshUntil = Date.now() + jitteredTtl;
    const json = JSON.stringify({ v: value, f: freshUntil, t: tags } satisfies Stored);
    if (Buffer.byteLength(json) > maxValueBytes) {
      this.stats.tooLarge += 1;
      if (!this.tooLargeLogged.has(id)) {
        this.tooLargeLogged.add(id);
        this.opts.log.warn({ namespace, id, bytes: Buffer.byteLength(json) }, 'value too large to cache');
      }
      return;
    }
    this.putL1(id, { value, freshUntil, staleUntil: freshUntil + graceMs, tags });
    if (seenTombstone === null) return;
    const lifetime = jitteredTtl + graceMs;
    try {
      // The entry joins its tags' sets before it is written: an invalidation of a tag that runs between
      // the two then finds it and leaves a tombstone, which the write below respects. (Written first, it
      // could be missed by an invalidation that ran before the tags were added, and outlive it.)
      for (const tag of tags) {
        const tagKey = keys.cacheTag(tag);
        await oneSlotMulti(redis, 'cache tag', [tagKey])
          .sadd(tagKey, id)
          .pexpire(tagKey, lifetime, 'GT')
          .pexpire(tagKey, lifetime, 'NX')
          .exec();
      }
      const stored = await STORE_UNLESS_INVALIDATED.run(redis, [key], json, lifetime, seenTombstone);
      if (stored === 0) this.l1.delete(id); // invalidated while loading: do not keep it here either
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
    }
  }

  /**
   * Forgets `ids` and every entry depending on `tags`, in L2 and in every instance's L1. Call it after
   * the write that changed them has committed.
   */
  async invalidate(change: { ids?: string[]; tags?: string[] }): Promise<void> {
    const { redis, keys, namespace, tombstoneMs } = this.opts;
    const ids = new Set(change.ids ?? []);
    const tags = change.tags ?? [];
    this.dropL1([...ids], tags);
    try {
      // On a cluster the tag sets, the entries and the bus are on different shards, and one of them may
      // be failing over while the others answer: whatever was written, the message is still sent (it
      // names the tags too, which every instance drops from L1 by themselves), and the whole change is
      // then sent again (below).
      const written: Array<PromiseSettledResult<unknown>> = await Promise.allSettled(
        tags.map(async (tag) => {
          for (const id of await redis.smembers(keys.cacheTag(tag))) ids.add(id);
        }),
      );
      this.dropL1([...ids], []);
      const tombstone = () => `!t${randomUUID().slice(0, 8)}`;
      const writes = () => [
        ...[...ids].map((id) => redis.set(keys.cacheEntry(namespace, id), tombstone(), 'PX', tombstoneMs)),
        ...tags.map((tag) => redis.del(keys.cacheTag(tag))),
      ];
      const message = () =>
        publish(
          redis,
          keys.cacheBus(),
          JSON.stringify({ from: this.instanceId, ns: namespace, ids: [...ids], tags }),
        );
      if (isCluster(redis)) {
        // The bus message leaves once every shard has answered for its writes.
        written.push(...(await Promise.allSettled(writes())));
        await message();
      } else {
        // One server runs a connection's commands in the order they were sent, so the message, sent last,
        // reaches the other instances after the tombstones are written: one round trip for both.
        written.push(...(await Promise.allSettled([...writes(), message()])));
      }
      const failed = written.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      // Redis is away, so none of its entries can be served meanwhile; forget them as soon as it is back.
      this.pending.push({ ids: [...ids], tags });
      this.opts.log.warn({ namespace }, 'redis-cache unavailable: invalidation queued until it is back');
      // A cluster stays ready while one shard fails over, so its `ready` does not say when to retry.
      if (isCluster(redis)) setTimeout(() => void this.retryPending(), 1000).unref();
    }
  }

  private onBusMessage(message: string): void {
    try {
      const { from, ns, ids, tags, probe } = JSON.parse(message) as {
        from: string;
        ns: string;
        ids: string[];
        tags: string[];
        /** Set on a probe (`confirmBus`), which names nothing to drop. */
        probe?: string;
      };
      if (from === this.instanceId) {
        if (probe !== undefined && probe === this.probe) {
          this.probe = undefined;
          this.l1.clear();
          this.busUp = true;
        }
        return;
      }
      if (ns !== this.opts.namespace) return;
      this.dropL1(ids, tags);
    } catch {
      this.l1.clear(); // an unreadable message: forget everything rather than risk a stale read
    }
  }

  private dropL1(ids: string[], tags: string[]): void {
    for (const id of ids) this.l1.delete(id);
    for (const tag of tags) for (const id of [...(this.l1ByTag.get(tag) ?? [])]) this.l1.delete(id);
  }

  /** Drops the whole L1 (e.g. after a bus reconnect). */
  clearLocal(): void {
    this.l1.clear();
  }
}
