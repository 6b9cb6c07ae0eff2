/** The notifier schema's tables, as Kysely sees them. */
import type { ColumnType, Generated } from 'kysely';

export type NotificationType = 'follow' | 'favorite' | 'comment' | 'mention';

export interface NotificationsTable {
  id: Generated<string>;
  recipient_id: string;
  type: NotificationType;
  /** The job's payload minus the recipient: actor, article, excerpt, time. */
  payload: ColumnType<Record<string, unknown>, string, string>;
  created_at: Generated<Date>;
  read_at: Date | null;
  idempotency_key: string | null;
}

export interface RecipientsTable {
  user_id: string;
  username: string;
  email: string;
  updated_at: Date;
  last_daily_digest_at: Date | null;
  last_weekly_digest_at: Date | null;
}

export type EmailChoice = 'instant' | 'digest' | 'off';
export type DigestChoice = 'daily' | 'weekly' | 'off';

export interface PreferencesTable {
  user_id: string;
  email: ColumnType<Record<NotificationType, EmailChoice>, string, string>;
  digest: DigestChoice;
  updated_at: Generated<Date>;
}

export interface EmailDeliveriesTable {
  idempotency_key: string;
  recipient: string;
  message_id: string;
  sent_at: Generated<Date>;
}

export interface NotifierDatabase {
  notifications: NotificationsTable;
  recipients: RecipientsTable;
  preferences: PreferencesTable;
  email_deliveries: EmailDeliveriesTable;
}
