import type { Migration } from '@atoll/db';
import * as createUsers from './2026-11-22T00-00_create_users.ts';
import * as outboxAndGoogle from './2026-11-22T01-00_outbox_and_google.ts';
import * as usersDisabledAt from './2026-12-02T00-00_users_disabled_at.ts';
import * as usersSecurityStamp from './2026-12-05T00-00_users_security_stamp.ts';

/** The auth schema's migrations, by name; names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T00-00_create_users': createUsers,
  '2026-11-22T01-00_outbox_and_google': outboxAndGoogle,
  '2026-12-02T00-00_users_disabled_at': usersDisabledAt,
  '2026-12-05T00-00_users_security_stamp': usersSecurityStamp,
};

export const SCHEMA = 'auth';
