/**
 * The transactional outbox for user events. A change to an account and the event that describes it are
 * written in one PostgreSQL transaction (`recordEvent`); the relay then appends unpublished events to the
 * user events stream on redis-queue and marks them published. Delivery is at least once: consumers apply
 * events idempotently. With several auth instances, `for update skip locked` gives each row to one relay
 * at a time. When redis-queue is down, events wait in the table and go out when it is back; the request
 * that caused them has already succeeded.
 */
import { type EventPayload, type EventType, publishUserEvent } from '@atoll/events';
import type { Keys } from '@atoll/redis-keys';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import type { Executor } from '../users/user.repository.ts';

export async function recordEvent<T extends EventType>(
  db: Executor,
  type: T,
  payload: EventPayload<T>,
): Promise<void> {
  await db
    .insertInto('outbox')
    .values({ type, payload: JSON.stringify(payload) })
    .execute();
}

export interface RelayLog {
  warn(obj: object, msg?: string): void;
}

export class OutboxRelay {
  private readonly db: Kysely<AuthDatabase>;
  private readonly redis: Redis;
  private readonly keys: Keys;
  private readonly log: RelayLog;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private failing = false;

  constructor(db: Kysely<AuthDatabase>, redis: Redis, keys: Keys, log: RelayLog) {
    this.db = db;
    this.redis = redis;
    this.keys = keys;
    this.log = log;
  }

  /** Publishes what is pending now (one pass at a time per process); resolves to how many went out. */
  flush(): Promise<number> {
    this.running ??= this.publishPending().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async publishPending(): Promise<number> {
    let published = 0;
    try {
      for (;;) {
        const sent = await this.db.transaction().execute(async (trx) => {
          const rows = await trx
            .selectFrom('outbox')
            .select(['id', 'type', 'payload'])
            .where('published_at', 'is', null)
            .orderBy('id')
            .limit(100)
            .forUpdate()
            .skipLocked()
            .execute();
          for (const row of rows) {
            await publishUserEvent(
              this.redis,
              this.keys,
              row.type as EventType,
              row.payload as EventPayload<EventType>,
            );
          }
          if (rows.length > 0) {
            await trx
              .updateTable('outbox')
              .set({ published_at: new Date() })
              .where(
                'id',
                'in',
                rows.map((r) => r.id),
              )
              .execute();
          }
          return rows.length;
        });
        published += sent;
        if (sent < 100) break;
      }
      if (this.failing) this.log.warn({}, 'outbox relay publishing again');
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.log.warn({ err: { message: (err as Error).message } }, 'outbox relay cannot publish yet');
      this.failing = true;
    }
    return published;
  }

  /** Publishes right away (after a commit) without waiting for the next tick. */
  kick(): void {
    void this.flush();
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }
}
