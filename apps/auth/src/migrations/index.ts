import type { Migration } from '@atoll/db';
import * as createUsers from './2026-11-22T00-00_create_users.ts';

/** The auth schema's migrations, by name; names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T00-00_create_users': createUsers,
};

export const SCHEMA = 'auth';
