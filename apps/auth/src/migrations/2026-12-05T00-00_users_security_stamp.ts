import { type Kysely, sql } from 'kysely';

// Frozen: imports nothing from the app.
// - users.security_stamp: a random value replaced whenever the account's credentials change (email,
//   password, a reset, a Google link that takes the account over). Reset links are bound to it, so a
//   link mailed before such a change never works again, even if the email later changes back.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('users')
    .addColumn('security_stamp', 'text', (col) => col.notNull().defaultTo(sql`gen_random_uuid()::text`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('security_stamp').execute();
}
