import type { Kysely } from 'kysely';

// Frozen: imports nothing from the app. What safer notification mail needs:
// - recipients.email_verified: whether the account's address is verified (null: not known yet, from an
//   event version before it was carried; treated as unverified);
// - recipients.registered_at: when the account was created (its user.registered time);
// - notifications.email_deferred: an instant email that was over a mail cap and was not sent; the next
//   digest lists the notification whatever the type's preference.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('recipients')
    .addColumn('email_verified', 'boolean')
    .addColumn('registered_at', 'timestamptz')
    .execute();
  await db.schema
    .alterTable('notifications')
    .addColumn('email_deferred', 'boolean', (c) => c.notNull().defaultTo(false))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('notifications').dropColumn('email_deferred').execute();
  await db.schema.alterTable('recipients').dropColumn('registered_at').dropColumn('email_verified').execute();
}
