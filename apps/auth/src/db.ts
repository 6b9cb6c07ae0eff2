import type { ColumnType, Generated } from 'kysely';

/** The auth schema as the code sees it (the migrations are the source of truth). */
export interface UsersTable {
  id: Generated<string>;
  username: string;
  email: string;
  password_hash: string | null;
  bio: string | null;
  image: string | null;
  google_subject: string | null;
  email_verified_at: Date | null;
  /** Set while an admin has the account disabled: no sign-in until it is cleared. */
  disabled_at: Date | null;
  /**
   * Replaced whenever the credentials change (email, password, reset, a Google link that takes the
   * account over): what reset links are bound to.
   */
  security_stamp: ColumnType<string, string | undefined, string>;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface OutboxTable {
  id: Generated<string>;
  type: string;
  payload: ColumnType<unknown, string, string>;
  created_at: Generated<Date>;
  published_at: Date | null;
}

export interface AuthDatabase {
  users: UsersTable;
  outbox: OutboxTable;
}
