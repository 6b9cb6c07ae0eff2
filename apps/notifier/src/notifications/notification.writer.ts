/**
 * Writes the fan-out's notification rows in groups, the way PostgreSQL groups commits: while one INSERT
 * is in flight, the rows that other jobs want written wait, then all go out together as one INSERT (one
 * transaction, one WAL flush) instead of one each. Under load a group grows to the worker's concurrency;
 * alone, a row is written at once. Each job still gets its own row back, or the row an earlier attempt of
 * the same job wrote (`created: false`: idempotent by key), or its own error.
 */
import { type Kysely, sql } from 'kysely';
import type { NotificationType, NotifierDatabase } from '../db.ts';
import type { NotificationRow } from './notification.repository.ts';

export interface NewNotification {
  recipientId: string;
  type: NotificationType;
  payload: Record<string, unknown>;
  /** The job that creates the row: a retried or stalled job finds the row it wrote before. */
  key: string;
}

type Written = { row: NotificationRow; created: boolean };
type Waiter = { resolve: (w: Written) => void; reject: (err: unknown) => void };

export class NotificationWriter {
  private readonly db: Kysely<NotifierDatabase>;
  private readonly maxGroup: number;
  private pending = new Map<string, { input: NewNotification; waiters: Waiter[] }>();
  private writing = false;

  constructor(db: Kysely<NotifierDatabase>, maxGroup = 200) {
    this.db = db;
    this.maxGroup = maxGroup;
  }

  /** Inserts the notification of a job, once. */
  insertOnce(input: NewNotification): Promise<Written> {
    return new Promise<Written>((resolve, reject) => {
      const same = this.pending.get(input.key);
      if (same) same.waiters.push({ resolve, reject });
      else this.pending.set(input.key, { input, waiters: [{ resolve, reject }] });
      // Rows asked for in this same turn of the event loop join the group.
      if (!this.writing) setImmediate(() => void this.drain());
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.pending.size > 0) {
        const group = [...this.pending.values()].slice(0, this.maxGroup);
        for (const { input } of group) this.pending.delete(input.key);
        try {
          const written = await writeGroup(
            this.db,
            group.map((g) => g.input),
          );
          for (const { input, waiters } of group) {
            const result = written.get(input.key);
            for (const w of waiters)
              result ? w.resolve(result) : w.reject(new Error(`notification ${input.key} was not written`));
          }
        } catch (err) {
          for (const { waiters } of group) for (const w of waiters) w.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}

/**
 * One statement: insert the rows whose key is new, and read back the rows whose key an earlier attempt
 * already wrote (the INSERT's snapshot does not see its own rows, so the two parts never overlap).
 */
async function writeGroup(
  db: Kysely<NotifierDatabase>,
  rows: NewNotification[],
): Promise<Map<string, Written>> {
  const input = JSON.stringify(
    rows.map((r, ord) => ({
      recipient_id: r.recipientId,
      type: r.type,
      payload: r.payload,
      idempotency_key: r.key,
      ord,
    })),
  );
  const { rows: out } = await sql<NotificationRow & { idempotency_key: string; created: boolean }>`
    with input as (
      select * from jsonb_to_recordset(${input}::jsonb)
        as x(recipient_id uuid, type text, payload jsonb, idempotency_key text, ord int)
    ), inserted as (
      insert into notifications (recipient_id, type, payload, idempotency_key)
      select recipient_id, type, payload, idempotency_key from input order by ord
      on conflict (idempotency_key) do nothing
      returning id, recipient_id, type, payload, created_at, read_at, idempotency_key
    )
    select *, true as created from inserted
    union all
    select n.id, n.recipient_id, n.type, n.payload, n.created_at, n.read_at, n.idempotency_key, false
    from notifications n join input i on n.idempotency_key = i.idempotency_key
    where not exists (select 1 from inserted where inserted.idempotency_key = n.idempotency_key)`.execute(db);
  return new Map(
    out.map(({ idempotency_key, created, ...row }) => [
      idempotency_key,
      { row: row as NotificationRow, created },
    ]),
  );
}
