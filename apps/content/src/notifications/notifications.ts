/**
 * Notification jobs for the notifier: a follow, a favorite, a comment and an `@username` mention each
 * become a job of the `notifications` queue (`@atoll/jobs`). The job is written to `job_outbox` in the
 * same transaction as the write that causes it, and a relay enqueues the pending rows in one addBulk
 * (`@atoll/db` OutboxRelay) with each outbox row's id as its job id, so a job is never lost, never enqueued without its cause, and never
 * enqueued twice. Nobody is notified of their own doing.
 */
import { OutboxRelay, type RelayLog } from '@atoll/db';
import type { JobName, JobPayload, Producer } from '@atoll/jobs';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import type { Executor } from '../profiles/profile.repository.ts';

type Notification = JobName<'notifications'>;

/** Writes a notification job to the outbox (not for your own doing); returns whether it wrote one. */
export async function recordNotification<J extends Notification>(
  db: Executor,
  name: J,
  payload: JobPayload<'notifications', J>,
): Promise<boolean> {
  if (payload.actorId === payload.recipientId) return false;
  await db
    .insertInto('job_outbox')
    .values({ queue: 'notifications', name, payload: JSON.stringify(payload) })
    .execute();
  return true;
}

const MENTION = /(?:^|[^\w@])@([A-Za-z0-9_.-]{1,64})/g;

/** The distinct usernames mentioned as `@name` in a text. */
export function mentionedUsernames(text: string): string[] {
  return [
    ...new Set([...text.matchAll(MENTION)].map((m) => (m[1] ?? '').replace(/[.-]+$/, '')).filter(Boolean)),
  ];
}

/**
 * The first 280 UTF-16 units of a text, ending in `...` when it was cut. A cut never splits a surrogate
 * pair: half of one is not a character, and PostgreSQL refuses it in the outbox row's JSON.
 */
export function excerpt(text: string): string {
  if (text.length <= 280) return text;
  const end = /[\uD800-\uDBFF]/.test(text.charAt(276)) ? 276 : 277;
  return `${text.slice(0, end)}...`;
}

export function notificationRelay(db: Kysely<ContentDatabase>, producer: Producer, log: RelayLog) {
  return new OutboxRelay<{ queue: string; name: string; payload: unknown }>({
    db,
    table: 'job_outbox',
    columns: ['queue', 'name', 'payload'],
    // A batch of pending rows goes out as one addBulk: one round trip, all or nothing.
    deliverMany: async (rows) => {
      await producer.enqueueMany(
        'notifications',
        rows.map((row) => ({
          name: row.name as Notification,
          payload: row.payload as never,
          jobId: `${row.name}-${row.id}`,
        })),
      );
    },
    log,
  });
}
