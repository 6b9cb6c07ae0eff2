/**
 * Comment queries. Adding a comment is one statement (one round trip, atomic by itself, so no
 * `begin`/`commit`): it makes sure the commenter has a profile row, inserts the comment, writes its
 * notification jobs to `job_outbox` (the outbox row is part of the same atomic write), and returns the
 * comment with its author's profile.
 */
import { sql } from 'kysely';
import type { Executor } from '../profiles/profile.repository.ts';

/** A comment with its author's public profile, as a page shows it. */
export interface CommentRow {
  id: string;
  body: string;
  created_at: Date;
  updated_at: Date;
  author_id: string;
  username: string;
  bio: string | null;
  image: string | null;
}

/** A page of an article's comments, oldest first; one query. */
export function listComments(
  db: Executor,
  articleId: string,
  page: { limit: number; offset: number },
): Promise<CommentRow[]> {
  return db
    .selectFrom('comments as c')
    .innerJoin('profiles as p', 'p.user_id', 'c.author_id')
    .select([
      'c.id',
      'c.body',
      'c.created_at',
      'c.updated_at',
      'c.author_id',
      'p.username',
      'p.bio',
      'p.image',
    ])
    .where('c.article_id', '=', articleId)
    .orderBy('c.id')
    .limit(page.limit)
    .offset(page.offset)
    .execute();
}

export interface NewComment {
  articleId: string;
  authorId: string;
  /** The commenter's name as the gateway vouched for it (their profile row's, if it has none yet). */
  authorUsername: string;
  body: string;
}

/**
 * The notification jobs a comment causes, without the comment's id (the statement adds it):
 * `jobs` as they are, and one `mention` job per existing user named in `mentioned` (lower case), with
 * `mentionPayload` and that user as its recipient, never the commenter.
 */
export interface CommentJobs {
  jobs: Array<{ name: string; payload: object }>;
  mentioned: string[];
  mentionPayload: object;
}

/**
 * Adds a comment and its notification jobs in one statement; null when the article is gone (its
 * foreign key fails the statement, 23503, and nothing is written).
 *
 * Data-modifying CTEs all run, to completion, whether or not the final select reads them; they see
 * the same snapshot, so the profile is read from the table (left join) and, for a commenter who had
 * no row, completed from the values the `ensured` insert used (`username`, no bio, no image).
 */
export async function insertComment(
  db: Executor,
  c: NewComment,
  notify: CommentJobs,
): Promise<CommentRow | null> {
  const mentions =
    notify.mentioned.length === 0
      ? sql``
      : sql`union all
        select 'notifications', 'mention',
               ${JSON.stringify(notify.mentionPayload)}::jsonb
                 || jsonb_build_object('commentId', c.id, 'recipientId', p.user_id)
        from c, profiles p
        where lower(p.username) in (${sql.join(notify.mentioned)}) and p.user_id <> ${c.authorId}`;
  const statement = sql<CommentRow>`
    with ensured as (
      insert into profiles (user_id, username, bio, image, updated_at)
      values (${c.authorId}, ${c.authorUsername}, null, null, ${new Date(0)})
      on conflict do nothing
    ), c as (
      insert into comments (article_id, author_id, body)
      values (${c.articleId}, ${c.authorId}, ${c.body})
      returning id, body, created_at, updated_at, author_id
    ), jobs as (
      insert into job_outbox (queue, name, payload)
      select 'notifications', j.name, j.payload || jsonb_build_object('commentId', c.id)
      from c, jsonb_to_recordset(${JSON.stringify(notify.jobs)}::jsonb) as j(name text, payload jsonb)
      ${mentions}
    )
    select c.id, c.body, c.created_at, c.updated_at, c.author_id,
           coalesce(p.username, ${c.authorUsername}) as username, p.bio, p.image
    from c left join profiles p on p.user_id = c.author_id`;
  try {
    return (await statement.execute(db)).rows[0] ?? null;
  } catch (err) {
    if ((err as { code?: string }).code === '23503') return null;
    throw err;
  }
}

/**
 * Deletes a comment of an article if `authorId` wrote it; returns what was there when nothing was
 * deleted (`absent`, or `forbidden`: someone else's). The usual case, your own comment, is one query.
 */
export async function deleteOwnComment(
  db: Executor,
  articleId: string,
  commentId: string,
  authorId: string,
): Promise<'deleted' | 'absent' | 'forbidden'> {
  const deleted = await db
    .deleteFrom('comments')
    .where('id', '=', commentId)
    .where('article_id', '=', articleId)
    .where('author_id', '=', authorId)
    .executeTakeFirst();
  if (Number(deleted.numDeletedRows) > 0) return 'deleted';
  const other = await db
    .selectFrom('comments')
    .select('id')
    .where('id', '=', commentId)
    .where('article_id', '=', articleId)
    .executeTakeFirst();
  return other ? 'forbidden' : 'absent';
}
