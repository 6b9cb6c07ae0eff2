/**
 * Who the notifier can mail: `recipients` is kept from the user events Stream (auth's `user.registered`
 * carries the email address, `user.updated` a new username). A registration also enqueues the welcome
 * email, with the user's id as its job id (once per account, however often the event comes).
 *
 * Events may come again or out of order (the consumer delivers at least once): a row keeps the newest
 * version by the event's own time.
 */
import type { EventPayloads, StreamEvent } from '@atoll/events';
import type { Producer } from '@atoll/jobs';
import type { Kysely } from 'kysely';
import type { NotifierDatabase } from '../db.ts';

export async function applyUserEvent(
  db: Kysely<NotifierDatabase>,
  producer: Producer,
  event: StreamEvent,
): Promise<void> {
  if (event.type === 'user.registered') {
    const user = event.payload as EventPayloads['user.registered'];
    const at = new Date(user.occurredAt);
    await db
      .insertInto('recipients')
      .values({ user_id: user.userId, username: user.username, email: user.email, updated_at: at })
      .onConflict((oc) =>
        oc
          .column('user_id')
          .doUpdateSet({ username: user.username, email: user.email, updated_at: at })
          .where('recipients.updated_at', '<', at),
      )
      .execute();
    await producer.enqueue(
      'email',
      'welcome',
      { v: 1, userId: user.userId, to: user.email, username: user.username },
      { jobId: `welcome-${user.userId}` },
    );
  } else if (event.type === 'user.updated') {
    const user = event.payload as EventPayloads['user.updated'];
    const at = new Date(user.occurredAt);
    await db
      .updateTable('recipients')
      .set({ username: user.username, updated_at: at })
      .where('user_id', '=', user.userId)
      .where('updated_at', '<', at)
      .execute();
  }
}
