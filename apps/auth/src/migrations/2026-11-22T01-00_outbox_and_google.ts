import { type Kysely, sql } from 'kysely';

// Frozen: imports nothing from the app.
// - outbox: user events written in the same transaction as the change they describe, published to the
//   user events stream by the relay (at least once), so a change and its event are never split.
// - users.google_subject / email_verified_at: for Google sign-in and email verification.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('published_at', 'timestamptz')
    .execute();
  await sql`create index outbox_unpublished on outbox (id) where published_at is null`.execute(db);
  await db.schema
    .alterTable('users')
    .addColumn('google_subject', 'text')
    .addColumn('email_verified_at', 'timestamptz')
    .execute();
  await sql`create unique index users_google_subject_key on users (google_subject) where google_subject is not null`.execute(
    db,
  );
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('google_subject').dropColumn('email_verified_at').execute();
  await db.schema.dropTable('outbox').execute();
}
