/**
 * The notification fan-out: each job of the notifications queue (follow, favorite, comment, mention)
 * becomes an in-app notification row, a live event, and an email now or later in the digest, as the
 * recipient prefers. Idempotent: the row is keyed by the job id, so a retried or stalled job finds the
 * row it wrote before; the email job's id is derived from the row, so it is never enqueued twice
 * either, and the live event carries the row's id, which clients use to drop a repeat.
 *
 * An instant email obeys the mail rules (mail-rules.ts, mail-caps.ts): nothing is mailed to an
 * unverified address, nothing an unverified or too new account did is mailed (in-app only), and over a
 * cap per recipient or per actor the email is folded into the next digest (the row is marked
 * `email_deferred` and stays unread).
 */
import type { Handlers, JobPayloads, Producer } from '@atoll/jobs';
import type { Kysely } from 'kysely';
import type { NotificationType, NotifierDatabase } from '../db.ts';
import type { LivePublisher } from '../live/publisher.ts';
import { DEFAULT_PREFERENCES, type Preferences } from '../preferences/preferences.repository.ts';
import type { MailCaps } from './mail-caps.ts';
import { mailableRecipient, trustedActor } from './mail-rules.ts';
import { toApi } from './notification.repository.ts';
import { NotificationWriter } from './notification.writer.ts';
import { TurnBatch } from './turn-batch.ts';

type Payload = JobPayloads['notifications'][NotificationType];

export class RecipientUnknownError extends Error {
  constructor(userId: string) {
    super(`recipient ${userId} is not known yet (its user.registered event has not arrived)`);
    this.name = 'RecipientUnknownError';
  }
}

export function fanOutHandlers(deps: {
  db: Kysely<NotifierDatabase>;
  producer: Producer;
  live: LivePublisher;
  caps: MailCaps;
  /** NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: how old an actor's account must be for its actions to be mailed. */
  minActorAgeMs: number;
  log?: { info(obj: object, msg: string): void };
}): Handlers<'notifications'> {
  const { db, producer, live, caps } = deps;
  // Rows of concurrent jobs are written together (one INSERT, one commit): see notification.writer.ts.
  const writer = new NotificationWriter(db);
  const users = new TurnBatch((ids: string[]) => mailingFacts(db, ids));
  const handle = (type: NotificationType) => async (payload: Payload, meta: { jobId: string }) => {
    const { recipientId, v: _v, ...rest } = payload;
    const { row } = await writer.insertOnce({
      recipientId,
      type,
      payload: rest,
      key: `notifications:${meta.jobId}`,
    });
    const notification = toApi(row);
    await live.publish({ userId: recipientId, notification });

    // Where and whether to mail: the recipient (and whether the address is verified), their
    // preferences, and the actor's standing (verified, account age); one query for the jobs of a turn.
    const [target, actorRow] = await Promise.all([users.get(recipientId), users.get(payload.actorId)]);
    const choice = (target?.prefs ?? DEFAULT_PREFERENCES.email)[type] ?? DEFAULT_PREFERENCES.email[type];
    if (choice !== 'instant') return; // the digest reads the row later; or no email at all
    if (!target) throw new RecipientUnknownError(recipientId); // retried with backoff until it is known
    if (!mailableRecipient({ emailVerified: target.emailVerified })) return; // in-app only
    const actor = {
      emailVerified: actorRow?.emailVerified ?? null,
      registeredAt: actorRow?.registeredAt ?? null,
    };
    if (!trustedActor(actor, deps.minActorAgeMs, new Date())) return; // in-app only
    const verdict = await caps.take(recipientId, payload.actorId);
    if (verdict !== 'send') {
      await db.updateTable('notifications').set({ email_deferred: true }).where('id', '=', row.id).execute();
      deps.log?.info({ notification: row.id, type, verdict }, 'instant email folded into the digest');
      return;
    }
    const p = payload as Partial<JobPayloads['notifications']['comment']>;
    await producer.enqueue(
      'email',
      'notification',
      {
        v: 1,
        notificationId: notification.id,
        to: target.to,
        username: target.username,
        type,
        actorUsername: payload.actorUsername,
        articleSlug: p.articleSlug ?? null,
        articleTitle: p.articleTitle ?? null,
        excerpt: p.excerpt ?? null,
      },
      { jobId: `notification-${notification.id}` },
    );
  };
  return {
    follow: handle('follow'),
    favorite: handle('favorite'),
    comment: handle('comment'),
    mention: handle('mention'),
  };
}

/** What the mail rules need to know of a user, as recipient (address, preferences) or as actor. */
interface MailingFacts {
  to: string;
  username: string;
  emailVerified: boolean | null;
  registeredAt: Date | null;
  prefs: Preferences['email'] | null;
}

/** The mailing facts of the known users among `ids`. */
async function mailingFacts(db: Kysely<NotifierDatabase>, ids: string[]): Promise<Map<string, MailingFacts>> {
  const rows = await db
    .selectFrom('recipients as r')
    .leftJoin('preferences as p', 'p.user_id', 'r.user_id')
    .select([
      'r.user_id',
      'r.email as to',
      'r.username',
      'r.email_verified as emailVerified',
      'r.registered_at as registeredAt',
      'p.email as prefs',
    ])
    .where('r.user_id', 'in', ids)
    .execute();
  return new Map(rows.map(({ user_id, ...facts }) => [user_id, facts]));
}
