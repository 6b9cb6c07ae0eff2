/**
 * The relay half of a transactional outbox. A service writes a row to its outbox table in the same
 * transaction as the change the row announces; the relay then delivers pending rows (to a Stream, to a
 * queue) and marks them `published_at`. Delivery is at least once, so receivers must be idempotent.
 * With several instances, `for update skip locked` hands each row to one relay at a time. When the
 * target is down, rows wait in the table and go out when it is back: the request that wrote them has
 * already succeeded, and nothing is lost.
 *
 * The table needs `id bigserial primary key`, `published_at timestamptz` (null while pending) and the
 * columns `deliver` reads; an index `on (id) where published_at is null` keeps the scan cheap.
 */
import { type Kysely, sql } from 'kysely';

export interface RelayLog {
  warn(obj: object, msg?: string): void;
}

export interface OutboxRelayOptions<Row> {
  // biome-ignore lint/suspicious/noExplicitAny: the relay serves any schema, through raw SQL on `table`
  db: Kysely<any>;
  table: string;
  /** Columns to read besides `id`. */
  columns: string[];
  /** Delivers one row; or, with `deliverMany`, the whole batch at once (e.g. one BullMQ addBulk). */
  deliver?: (row: Row & { id: string }) => Promise<void>;
  deliverMany?: (rows: Array<Row & { id: string }>) => Promise<void>;
  /**
   * Runs once a batch is delivered, before its rows are marked published; rejecting leaves them pending
   * (e.g. waiting for a replica to have the writes, @atoll/redis `waitForReplicas`).
   */
  confirm?: () => Promise<void>;
  log: RelayLog;
  batch?: number;
}

export class OutboxRelay<Row extends Record<string, unknown>> {
  private readonly opts: OutboxRelayOptions<Row>;
  private readonly batch: number;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  /** The pass that follows the running one, asked for while it ran. */
  private next: Promise<number> | undefined;
  private failing = false;

  constructor(opts: OutboxRelayOptions<Row>) {
    this.opts = opts;
    this.batch = opts.batch ?? 100;
  }

  /**
   * Delivers what is pending now, one pass at a time per process; resolves to how many went out. Asked
   * while a pass runs, it runs one more pass after it: the running pass may have read the table before
   * the caller's rows were committed. Every request made during one pass shares that next pass.
   */
  flush(): Promise<number> {
    if (!this.running) {
      this.running = this.deliverPending().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running.then(() => {
      this.next = undefined;
      return this.flush();
    });
    return this.next;
  }

  private async deliverPending(): Promise<number> {
    const { db, table, columns, deliver, deliverMany } = this.opts;
    let delivered = 0;
    try {
      for (;;) {
        const sent = await db.transaction().execute(async (trx) => {
          const { rows } = await sql<Row & { id: string }>`
            select ${sql.join(['id', ...columns].map((c) => sql.ref(c)))} from ${sql.table(table)}
            where published_at is null order by id limit ${this.batch} for update skip locked`.execute(trx);
          if (deliverMany) {
            if (rows.length > 0) await deliverMany(rows);
          } else {
            for (const row of rows) await deliver?.(row);
          }
          if (rows.length > 0) {
            await this.opts.confirm?.();
            const ids = rows.map((r) => r.id);
            await sql`update ${sql.table(table)} set published_at = now() where id = any(${ids}::bigint[])`.execute(
              trx,
            );
          }
          return rows.length;
        });
        delivered += sent;
        if (sent < this.batch) break;
      }
      if (this.failing) this.opts.log.warn({ table }, 'outbox relay delivering again');
      this.failing = false;
    } catch (err) {
      if (!this.failing)
        this.opts.log.warn(
          { table, err: { message: (err as Error).message } },
          'outbox relay cannot deliver yet',
        );
      this.failing = true;
    }
    return delivered;
  }

  /** Delivers right away (after a commit) without waiting for the next tick. */
  kick(): void {
    void this.flush();
  }

  start(intervalMs = 1000): void {
    this.timer = setInterval(() => this.kick(), intervalMs);
    this.timer.unref();
  }

  /** Stops polling and waits for the running pass and the one asked for after it. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.running || this.next) await (this.next ?? this.running);
  }
}
