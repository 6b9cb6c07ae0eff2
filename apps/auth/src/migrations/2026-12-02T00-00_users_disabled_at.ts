import type { Kysely } from 'kysely';

// Frozen: imports nothing from the app.
// - users.disabled_at: set by an admin to turn an account off (no sign-in of any kind until it is
//   cleared); null for an account in use.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('disabled_at', 'timestamptz').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').dropColumn('disabled_at').execute();
}
