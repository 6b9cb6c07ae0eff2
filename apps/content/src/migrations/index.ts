import type { Migration } from '@atoll/db';
import * as createProfiles from './2026-11-22T00-00_create_profiles.ts';

/** The content schema's migrations, by name; names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T00-00_create_profiles': createProfiles,
};

export const SCHEMA = 'content';
