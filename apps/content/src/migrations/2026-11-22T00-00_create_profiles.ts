import { type Kysely, sql } from 'kysely';

// Frozen: imports nothing from the app. Content's own copy of the public part of each account, kept up
// to date from the user.* events; content never reads the auth schema.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('profiles')
    .addColumn('user_id', 'uuid', (c) => c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('bio', 'text')
    .addColumn('image', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`create unique index profiles_username_key on profiles (lower(username))`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('profiles').execute();
}
