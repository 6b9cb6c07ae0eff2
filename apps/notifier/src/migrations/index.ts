import type { Migration } from '@atoll/db';
import * as createNotifications from './2026-11-22T00-00_create_notifications.ts';
import * as delivery from './2026-11-23T00-00_delivery.ts';
import * as mailSafety from './2026-12-05T00-00_mail_safety.ts';

/** The notifier schema's migrations, by name; names sort in the order they apply. */
export const migrations: Record<string, Migration> = {
  '2026-11-22T00-00_create_notifications': createNotifications,
  '2026-11-23T00-00_delivery': delivery,
  '2026-12-05T00-00_mail_safety': mailSafety,
};

export const SCHEMA = 'notifier';
