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
  /** An instant email over a mail cap, not sent: the next digest lists the notification. */
  email_deferred: Generated<boolean>;
}

export interface RecipientsTable {
  user_id: string;
  username: string;
  email: string;
  updated_at: Date;
  /** Whether the address is verified; null when no event has said yet (treated as unverified). */
  email_verified: boolean | null;
  /** When the account was created (its user.registered time); null until that event arrives. */
  registered_at: Date | null;
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
