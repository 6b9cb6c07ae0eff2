import type { Migration } from '@atoll/db';
import * as createProfiles from './2026-11-22T00-00_create_profiles.ts';
import * as articles from './2026-11-22T02-00_articles.ts';
import * as jobOutbox from './2026-11-22T03-00_job_outbox.ts';

/** The content schema's migrations, by name; names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T00-00_create_profiles': createProfiles,
  '2026-11-22T02-00_articles': articles,
  '2026-11-22T03-00_job_outbox': jobOutbox,
};

export const SCHEMA = 'content';
