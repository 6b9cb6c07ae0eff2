/**
 * Reads an event Stream through a consumer group and hands each event to `handle`, one at a time.
 *
 * Delivery guarantees:
 * - At least once. An entry is acknowledged (XACK) only after `handle` resolved, so a crash, a stop or a
 *   lost connection between reading and acknowledging delivers it again later: handlers are idempotent.
 * - Not in order across retries. One consumer handles entries in Stream order, but a retried entry comes
 *   after the ones read meanwhile, and the consumers of one group share the Stream between them, so
 *   handlers also tolerate events out of order (e.g. keep the newest by the event's own time).
 * - Retries. A failed entry stays pending. At start and every `claimIdleMs / 2`, entries pending longer
 *   than `claimIdleMs` on any consumer of the group (a failed handler, a crashed instance) are claimed
 *   with XAUTOCLAIM and handled again.
 * - Dead letters. When `handle` fails on an entry's `maxDeliveries`-th delivery (counted by Redis, see
 *   XPENDING), or an entry comes back once more after that (its handler crashed the process), the entry
 *   is logged at error level and acknowledged. The log line is the dead-letter record: it names the entry
 *   id, which XRANGE finds in the Stream until trimming removes it. Payloads are not logged (PII).
 * - Undecodable entries (unknown type or version, a payload that does not match its schema) are logged
 *   with the reason and acknowledged at once: retrying cannot fix them.
 *
 * The client must be a worker-mode client (`maxRetriesPerRequest: null`: commands wait through an outage,
 * the loop logs once per outage and keeps going) used by this consumer only, because a blocking
 * XREADGROUP holds its connection. `stop()` does not wait for that read (nor for a Redis that is away):
 * it abandons the Redis call the loop is waiting on, lets a handler in flight finish and sends its XACK,
 * then disconnects the client, which ends the blocking read on the server; `start()` connects it again.
 * Entries read but not handled when `stop()` came stay pending and are retried after `claimIdleMs`.
 */
import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import type { RedisClient } from '@atoll/redis';
import type { EventType } from './catalog.ts';
import { decodeEvent } from './codec.ts';

export interface StreamEvent {
  /** The Stream entry id, e.g. `1732233600000-0`. */
  id: string;
  type: EventType;
  version: number;
  /** Valid against the schema of `type` at `version` (the current or the previous one). */
  payload: unknown;
}

export interface ConsumerLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface StreamConsumerOptions {
  redis: RedisClient;
  stream: string;
  group: string;
  consumer: string;
  handle: (event: StreamEvent) => Promise<void>;
  log: ConsumerLog;
  /** How long one XREADGROUP waits for new entries (default 2000 ms). */
  blockMs?: number;
  /** Entries per read or claim (default 100). */
  batch?: number;
  /** Deliveries before an entry is given up on (default 5). */
  maxDeliveries?: number;
  /** How long an entry stays pending before it is claimed and retried (default 30 000 ms). */
  claimIdleMs?: number;
}

type Entry = [id: string, fields: string[] | null];

export class StreamConsumer {
  private readonly o: Required<StreamConsumerOptions>;
  private loop: Promise<void> | undefined;
  private stopping = false;
  /** Rejects the Redis call (or the backoff) the loop is waiting on, so `stop()` never waits for it. */
  private interrupt: (() => void) | undefined;
  private disconnected = false;

  constructor(opts: StreamConsumerOptions) {
    this.o = { blockMs: 2000, batch: 100, maxDeliveries: 5, claimIdleMs: 30_000, ...opts };
  }

  start(): void {
    if (this.loop) return;
    this.stopping = false;
    const { redis } = this.o;
    if (redis.status === 'end' || this.disconnected) redis.connect().catch(() => undefined); // retries
    this.disconnected = false;
    this.loop = this.run();
  }

  /**
   * Ends the loop at once, or after the handler in flight has finished and its XACK was sent; then
   * disconnects the client. Does not wait for a blocking read, nor for a Redis that is away.
   */
  async stop(): Promise<void> {
    if (!this.loop) return;
    this.stopping = true;
    this.interrupt?.();
    await this.loop;
    this.loop = undefined;
    const { redis } = this.o;
    // Wait for the socket to close, so that start() can connect again; a client that is between
    // reconnection attempts has no socket and simply stops trying.
    const ended = ['connecting', 'connect', 'ready'].includes(redis.status) ? once(redis, 'end') : null;
    redis.disconnect();
    this.disconnected = true;
    await ended;
  }

  private async run(): Promise<void> {
    const { redis, stream, group, consumer, batch, blockMs, claimIdleMs, log } = this.o;
    let groupReady = false;
    let nextClaim = 0;
    let failures = 0;
    while (!this.stopping) {
      try {
        if (!groupReady) {
          await this.wait(() => redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM')).catch((err) => {
            if (!/BUSYGROUP/.test((err as Error).message)) throw err;
          });
          groupReady = true;
        }
        if (Date.now() >= nextClaim) {
          await this.reclaim();
          nextClaim = Date.now() + claimIdleMs / 2;
        }
        // Never block past the next claim, so retries keep their pace while the Stream is quiet.
        const block = Math.max(1, Math.min(blockMs, nextClaim - Date.now()));
        const reply = (await this.wait(() =>
          redis.xreadgroup('GROUP', group, consumer, 'COUNT', batch, 'BLOCK', block, 'STREAMS', stream, '>'),
        )) as [stream: string, entries: Entry[]][] | null;
        for (const [id, fields] of reply?.[0]?.[1] ?? []) {
          if (this.stopping) break;
          await this.process(id, fields, 1);
        }
        if (failures > 0) log.info({ stream, group }, 'event consumer reading again');
        failures = 0;
      } catch (err) {
        if (this.stopping) break;
        if (/NOGROUP/.test((err as Error).message)) groupReady = false; // the Stream was deleted
        if (failures === 0) {
          log.warn({ stream, group, err: { message: (err as Error).message } }, 'event consumer cannot read');
        }
        failures += 1;
        const backoff = Math.min(100 * 2 ** failures, 2000);
        await this.wait(() => delay(backoff, undefined, { ref: false })).catch(() => undefined);
      }
    }
  }

  /** Claims entries pending longer than `claimIdleMs` (on any consumer) and handles them again. */
  private async reclaim(): Promise<void> {
    const { redis, stream, group, consumer, batch, claimIdleMs, log } = this.o;
    let cursor = '0-0';
    do {
      const [next, entries, deleted] = (await this.wait(() =>
        redis.xautoclaim(stream, group, consumer, claimIdleMs, cursor, 'COUNT', batch),
      )) as [next: string, entries: Entry[], deleted?: string[]];
      for (const id of deleted ?? []) {
        log.warn({ stream, group, id }, 'a pending event was trimmed from the stream before it was handled');
      }
      const counts = await this.deliveryCounts(entries);
      for (const [id, fields] of entries) {
        if (this.stopping) return;
        await this.process(id, fields, counts.get(id) ?? 1);
      }
      cursor = next;
    } while (cursor !== '0-0' && !this.stopping);
  }

  /** XAUTOCLAIM does not say how often an entry was delivered; XPENDING (one per id) does. */
  private async deliveryCounts(entries: Entry[]): Promise<Map<string, number>> {
    const { redis, stream, group } = this.o;
    if (entries.length === 0) return new Map();
    const replies = await this.wait(() =>
      redis.pipeline(entries.map(([id]) => ['xpending', stream, group, id, id, 1])).exec(),
    );
    const counts = new Map<string, number>();
    for (const [err, rows] of replies ?? []) {
      if (err) throw err;
      // The extended form: [[id, consumer, idle ms, deliveries]]
      const [row] = rows as [id: string, consumer: string, idleMs: number, deliveries: number][];
      if (row) counts.set(row[0], Number(row[3]));
    }
    return counts;
  }

  private async process(id: string, fields: string[] | null, deliveries: number): Promise<void> {
    if (await this.settle(id, fields, deliveries)) {
      // Sent even when stop() came meanwhile (it disconnects only after this), but then not awaited.
      const acked = this.o.redis.xack(this.o.stream, this.o.group, id);
      acked.catch(() => undefined);
      await this.wait(() => acked);
    }
  }

  /** Handles one entry. True when done with it (handled, skipped, given up on); false to retry it. */
  private async settle(id: string, fields: string[] | null, deliveries: number): Promise<boolean> {
    const { stream, group, maxDeliveries, log } = this.o;
    const decoded = fields
      ? decodeEvent(fields)
      : { ok: false as const, reason: 'the entry is no longer in the stream' };
    if (!decoded.ok) {
      log.warn({ stream, group, id, reason: decoded.reason }, 'skipping an event that cannot be decoded');
      return true;
    }
    const about = { stream, group, id, type: decoded.type, version: decoded.version, deliveries };
    if (deliveries > maxDeliveries) {
      log.error(
        about,
        'dead letter: event delivered again after its last attempt (did it crash the handler?)',
      );
      return true;
    }
    try {
      await this.o.handle({ id, type: decoded.type, version: decoded.version, payload: decoded.payload });
      return true;
    } catch (err) {
      const error = { message: (err as Error).message };
      if (deliveries < maxDeliveries) {
        log.warn({ ...about, err: error }, 'event handler failed; the event will be retried');
        return false;
      }
      log.error({ ...about, err: error }, `dead letter: event handler failed ${deliveries} times, giving up`);
      return true;
    }
  }

  /** Waits for `call()` unless stop() comes first; once stopping, rejects at once without calling. */
  private wait<T>(call: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const stop = () => reject(new Error('stream consumer stopped'));
      if (this.stopping) return stop();
      this.interrupt = stop;
      const pending = call();
      pending.then(resolve, reject).finally(() => {
        if (this.interrupt === stop) this.interrupt = undefined;
      });
    });
  }
}
