import { randomUUID } from 'node:crypto';
import { type Kysely, type Selectable, sql, type Transaction, type Updateable } from 'kysely';
import type { AuthDatabase, UsersTable } from '../db.ts';

/** Repository functions take the executor first, so they work inside a transaction too. */
export type Executor = Kysely<AuthDatabase> | Transaction<AuthDatabase>;
export type UserRow = Selectable<UsersTable>;

export function findUserById(db: Executor, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
}

export function findUserByEmail(db: Executor, email: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .selectAll()
    .where(sql<string>`lower(email)`, '=', sql<string>`lower(${email})`)
    .executeTakeFirst();
}

/** Which of `username` / `email` another account (not `exceptId`) already uses, case-insensitively. */
export async function takenFields(
  db: Executor,
  wanted: { username?: string | undefined; email?: string | undefined },
  exceptId?: string,
): Promise<Array<'username' | 'email'>> {
  const taken: Array<'username' | 'email'> = [];
  for (const field of ['username', 'email'] as const) {
    const value = wanted[field];
    if (value === undefined) continue;
    let query = db
      .selectFrom('users')
      .select('id')
      .where(sql<string>`lower(${sql.ref(field)})`, '=', sql<string>`lower(${value})`);
    if (exceptId) query = query.where('id', '!=', exceptId);
    if (await query.executeTakeFirst()) taken.push(field);
  }
  return taken;
}

export function insertUser(
  db: Executor,
  values: { username: string; email: string; passwordHash: string | null },
): Promise<UserRow> {
  return db
    .insertInto('users')
    .values({ username: values.username, email: values.email, password_hash: values.passwordHash })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export function updateUser(
  db: Executor,
  id: string,
  patch: Pick<
    Updateable<UsersTable>,
    'username' | 'email' | 'email_verified_at' | 'password_hash' | 'bio' | 'image' | 'security_stamp'
  >,
  /** Only if the account still has this security stamp; otherwise nothing changes (undefined). */
  stamp: string,
): Promise<UserRow | undefined> {
  return db
    .updateTable('users')
    .set({ ...patch, updated_at: new Date() } as never)
    .where('id', '=', id)
    .where('security_stamp', '=', stamp)
    .returningAll()
    .executeTakeFirst();
}

/** A new security stamp: whatever was bound to the account's credentials until now stops working. */
export const newSecurityStamp = () => randomUUID();

/** The name of the unique index a PostgreSQL error violated, if it is a unique violation. */
export function uniqueViolation(err: unknown): 'username' | 'email' | null {
  const e = err as { code?: string; constraint?: string };
  if (e.code !== '23505') return null;
  if (e.constraint === 'users_username_key') return 'username';
  if (e.constraint === 'users_email_key') return 'email';
  return null;
}
