import { type Kysely, sql } from 'kysely';

// Frozen: imports nothing from the app. What delivering notifications needs:
// - notifications.idempotency_key: the job that created the row, so a retried job adds no second row;
// - recipients: who can be mailed (kept from the user events), and when their last digest went out;
// - preferences: per user, how each notification type is mailed and how often the digest comes;
// - email_deliveries: one row per email sent, keyed by the job's idempotency key (never mailed twice);
// - lock_fences: the highest fencing token that has written, per lock (@atoll/lock).
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('notifications').addColumn('idempotency_key', 'text').execute();
  await db.schema
    .createIndex('notifications_idempotency_key')
    .on('notifications')
    .column('idempotency_key')
    .unique()
    .execute();
  await sql`create index notifications_unread on notifications (recipient_id, id) where read_at is null`.execute(
    db,
  );
  await db.schema
    .createTable('recipients')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('email', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('last_daily_digest_at', 'timestamptz')
    .addColumn('last_weekly_digest_at', 'timestamptz')
    .execute();
  await db.schema
    .createTable('preferences')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('email', 'jsonb', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable('email_deliveries')
    .addColumn('idempotency_key', 'text', (c) => c.primaryKey())
    .addColumn('recipient', 'text', (c) => c.notNull())
    .addColumn('message_id', 'text', (c) => c.notNull())
    .addColumn('sent_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createTable('lock_fences')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('fence', 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['lock_fences', 'email_deliveries', 'preferences', 'recipients']) {
    await db.schema.dropTable(table).execute();
  }
  await db.schema.dropIndex('notifications_unread').execute();
  await db.schema.dropIndex('notifications_idempotency_key').execute();
  await db.schema.alterTable('notifications').dropColumn('idempotency_key').execute();
}
