/** In-app notifications: written by the fan-out, read and marked read through the API. */
import type { LiveNotification } from '@atoll/events';
import { type Kysely, sql } from 'kysely';
import type { NotificationType, NotifierDatabase } from '../db.ts';

export interface NotificationRow {
  id: string;
  recipient_id: string;
  type: NotificationType;
  payload: Record<string, unknown>;
  created_at: Date;
  read_at: Date | null;
}

const COLUMNS = ['id', 'recipient_id', 'type', 'payload', 'created_at', 'read_at'] as const;

/** A page, newest first: the `limit` notifications older than `before` (an id), or the newest. */
export function listPage(db: Kysely<NotifierDatabase>, recipientId: string, limit: number, before?: string) {
  let query = db
    .selectFrom('notifications')
    .select(COLUMNS)
    .where('recipient_id', '=', recipientId)
    .orderBy('id', 'desc')
    .limit(limit);
  if (before) query = query.where('id', '<', before);
  return query.execute();
}

/** What came after `after` (an id), oldest first: what a reconnecting live stream missed. */
export function listAfter(db: Kysely<NotifierDatabase>, recipientId: string, after: string, limit: number) {
  return db
    .selectFrom('notifications')
    .select(COLUMNS)
    .where('recipient_id', '=', recipientId)
    .where('id', '>', after)
    .orderBy('id', 'asc')
    .limit(limit)
    .execute();
}

export async function unreadCount(db: Kysely<NotifierDatabase>, recipientId: string): Promise<number> {
  const { count } = await db
    .selectFrom('notifications')
    .select(sql<string>`count(*)`.as('count'))
    .where('recipient_id', '=', recipientId)
    .where('read_at', 'is', null)
    .executeTakeFirstOrThrow();
  return Number(count);
}

/** Marks the given ids (only the recipient's own), or all, read; returns how many changed. */
export async function markRead(
  db: Kysely<NotifierDatabase>,
  recipientId: string,
  ids: string[] | 'all',
): Promise<number> {
  let query = db
    .updateTable('notifications')
    .set({ read_at: new Date() })
    .where('recipient_id', '=', recipientId)
    .where('read_at', 'is', null);
  if (ids !== 'all') query = query.where('id', 'in', ids);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The public shape of a notification (API, live events, digests): @atoll/events' live notification. */
export function toApi(row: NotificationRow): ApiNotification & { type: NotificationType } {
  const p = row.payload as Record<string, unknown>;
  return {
    id: Number(row.id),
    type: row.type,
    actor: { username: p.actorUsername as string },
    article: p.articleSlug ? { slug: p.articleSlug as string, title: p.articleTitle as string } : null,
    commentId: (p.commentId as number | null | undefined) ?? null,
    excerpt: (p.excerpt as string | undefined) ?? null,
    createdAt: new Date(row.created_at).toISOString(),
    read: row.read_at !== null,
  };
}

export type ApiNotification = LiveNotification;
