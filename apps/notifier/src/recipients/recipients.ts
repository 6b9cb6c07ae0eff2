/**
 * Who the notifier can mail: `recipients` is kept from the user events Stream. `user.registered` brings
 * the account (its address, and from v2 whether it is verified; its time is the account's age);
 * `user.updated` a new username (v1), or from v2 the whole current state: username, address and
 * verification, so notification mail follows an email change at once. A registration also enqueues the
 * welcome email, with the user's id as its job id (once per account, however often the event comes).
 *
 * Events may come again or out of order (the consumer delivers at least once): a row keeps the newest
 * version by the event's own time, and a `user.updated` v2 that arrives before its `user.registered`
 * creates the row (the registration time is filled in when that event comes).
 */
import type { EventVersions, StreamEvent } from '@atoll/events';
import type { Producer } from '@atoll/jobs';
import type { Kysely } from 'kysely';
import type { NotifierDatabase } from '../db.ts';

type Registered = EventVersions['user.registered'][1] & { emailVerified?: boolean };
type Updated = EventVersions['user.updated'][1] & { email?: string; emailVerified?: boolean };

/** Inserts or, if this state is newer than the row's, replaces a recipient's name, address, verification. */
async function upsert(
  db: Kysely<NotifierDatabase>,
  user: { userId: string; username: string; email: string; emailVerified: boolean | null },
  at: Date,
): Promise<void> {
  const values = { username: user.username, email: user.email, email_verified: user.emailVerified };
  await db
    .insertInto('recipients')
    .values({ user_id: user.userId, ...values, updated_at: at })
    .onConflict((oc) =>
      oc
        .column('user_id')
        .doUpdateSet({ ...values, updated_at: at })
        .where('recipients.updated_at', '<', at),
    )
    .execute();
}

export async function applyUserEvent(
  db: Kysely<NotifierDatabase>,
  producer: Producer,
  event: StreamEvent,
): Promise<void> {
  if (event.type === 'user.registered') {
    const user = event.payload as Registered;
    const at = new Date(user.occurredAt);
    await upsert(db, { ...user, emailVerified: user.emailVerified ?? null }, at);
    await db
      .updateTable('recipients')
      .set({ registered_at: at })
      .where('user_id', '=', user.userId)
      .where('registered_at', 'is', null)
      .execute();
    await producer.enqueue(
      'email',
      'welcome',
      { v: 1, userId: user.userId, to: user.email, username: user.username },
      { jobId: `welcome-${user.userId}` },
    );
  } else if (event.type === 'user.updated') {
    const user = event.payload as Updated;
    const at = new Date(user.occurredAt);
    if (user.email !== undefined && user.emailVerified !== undefined) {
      await upsert(db, { ...user, email: user.email, emailVerified: user.emailVerified }, at);
      return;
    }
    await db
      .updateTable('recipients')
      .set({ username: user.username, updated_at: at })
      .where('user_id', '=', user.userId)
      .where('updated_at', '<', at)
      .execute();
  }
}
