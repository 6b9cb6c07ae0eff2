import { type Kysely, type Selectable, sql, type Transaction } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import type { ProfilesDatabase, ProfilesTable } from './profile.table.ts';

export type Executor = Kysely<ContentDatabase> | Transaction<ContentDatabase>;
export type ProfileRow = Selectable<ProfilesTable>;

export function findProfileByUsername(db: Executor, username: string): Promise<ProfileRow | undefined> {
  return db
    .selectFrom('profiles')
    .selectAll()
    .where(sql<string>`lower(username)`, '=', sql<string>`lower(${username})`)
    .executeTakeFirst();
}

/**
 * Makes sure a profile row exists for a caller the gateway vouched for, before its user.registered
 * event arrives (events can lag). Written as of the epoch, so the real event, whatever its time, wins.
 */
export async function ensureProfile(
  db: Kysely<ProfilesDatabase> | Transaction<ProfilesDatabase>,
  userId: string,
  username: string,
): Promise<void> {
  await db
    .insertInto('profiles')
    .values({ user_id: userId, username, bio: null, image: null, updated_at: new Date(0) })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export async function follow(db: Executor, followerId: string, followeeId: string): Promise<boolean> {
  const inserted = await db
    .insertInto('follows')
    .values({ follower_id: followerId, followee_id: followeeId })
    .onConflict((oc) => oc.doNothing())
    .executeTakeFirst();
  return Number(inserted.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function unfollow(db: Executor, followerId: string, followeeId: string): Promise<void> {
  await db
    .deleteFrom('follows')
    .where('follower_id', '=', followerId)
    .where('followee_id', '=', followeeId)
    .execute();
}
