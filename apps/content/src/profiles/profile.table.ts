import type { ColumnType } from 'kysely';

/**
 * `content.profiles`: content's copy of the public part of each account, kept from the user.* events
 * (see profile.projection.ts). The migration is the source of truth for the table.
 */
export interface ProfilesTable {
  user_id: string;
  username: string;
  bio: string | null;
  image: string | null;
  /** When the account last changed, as the event says (`occurredAt`), not when content heard of it. */
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

/** The part of the content schema this folder uses; merged into the service's database type. */
export interface ProfilesDatabase {
  profiles: ProfilesTable;
}
