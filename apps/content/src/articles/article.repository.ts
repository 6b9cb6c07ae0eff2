/**
 * Article queries. A page of articles costs the same handful of queries whatever its size: the page's
 * ids, the total, the articles with their authors, and their tags — never one query per article (the
 * viewer's favorites and follows come from relations.ts).
 */
import { type Selectable, sql, type Updateable } from 'kysely';
import type { ArticlesRow } from '../db.ts';
import type { Executor } from '../profiles/profile.repository.ts';

export type ArticleRow = Selectable<ArticlesRow> & {
  author_username: string;
  author_bio: string | null;
  author_image: string | null;
};

/** What a list is filtered by, with names already resolved to user ids. */
export interface ListFilter {
  tag?: string | undefined;
  authorId?: string | undefined;
  /** Only articles this user has favorited. */
  favoritedBy?: string | undefined;
  /** The feed: only articles by authors this user follows. */
  followedBy?: string | undefined;
}

function selectArticles(db: Executor) {
  return db
    .selectFrom('articles as a')
    .innerJoin('profiles as p', 'p.user_id', 'a.author_id')
    .selectAll('a')
    .select(['p.username as author_username', 'p.bio as author_bio', 'p.image as author_image']);
}

function filtered(db: Executor, f: ListFilter) {
  let query = db.selectFrom('articles as a');
  if (f.tag !== undefined) {
    const tag = f.tag;
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('article_tags as t')
          .select('t.tag')
          .whereRef('t.article_id', '=', 'a.id')
          .where('t.tag', '=', tag),
      ),
    );
  }
  if (f.authorId !== undefined) query = query.where('a.author_id', '=', f.authorId);
  if (f.favoritedBy !== undefined) {
    const userId = f.favoritedBy;
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('favorites as f')
          .select('f.user_id')
          .whereRef('f.article_id', '=', 'a.id')
          .where('f.user_id', '=', userId),
      ),
    );
  }
  if (f.followedBy !== undefined) {
    const follower = f.followedBy;
    query = query.where(({ exists, selectFrom }) =>
      exists(
        selectFrom('follows as fo')
          .select('fo.followee_id')
          .whereRef('fo.followee_id', '=', 'a.author_id')
          .where('fo.follower_id', '=', follower),
      ),
    );
  }
  return query;
}

/** A page of article ids, newest first, and how many articles match: two queries. */
export async function listArticleIds(
  db: Executor,
  filter: ListFilter,
  page: { limit: number; offset: number },
): Promise<{ ids: string[]; total: number }> {
  const [rows, count] = await Promise.all([
    filtered(db, filter)
      .select('a.id')
      .orderBy('a.created_at', 'desc')
      .orderBy('a.id', 'desc')
      .limit(page.limit)
      .offset(page.offset)
      .execute(),
    filtered(db, filter)
      .select((eb) => eb.fn.countAll<string>().as('count'))
      .executeTakeFirstOrThrow(),
  ]);
  return { ids: rows.map((r) => r.id), total: Number(count.count) };
}

/** Who favorited an article (their "favorited by" lists show it). */
export async function favoritersOf(db: Executor, articleId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('favorites')
    .select('user_id')
    .where('article_id', '=', articleId)
    .execute();
  return rows.map((r) => r.user_id);
}

export interface NewArticle {
  slug: string;
  title: string;
  description: string;
  body: string;
  authorId: string;
  /** The author's name as the gateway vouched for it (their profile row's, if it has none yet). */
  authorUsername: string;
  /** Cleaned, in the author's order. */
  tags: string[];
}

/**
 * The mention notifications a new article causes: one `mention` job per existing user named in
 * `mentioned` (lower case), never the author, with `payload` and that user as its recipient.
 */
export interface ArticleMentions {
  mentioned: string[];
  payload: object;
}

/**
 * A new article in one statement (one round trip, atomic by itself, so no `begin`/`commit`): it makes
 * sure the author has a profile row, inserts the article, its tags in their order, and its mention jobs
 * in `job_outbox`, and returns the article as a reader sees it, with `notified` when a job was written.
 *
 * Data-modifying CTEs all run, to completion, and see the same snapshot, so the author's profile is read
 * from the table (left join) and, for an author who had no row, completed from the values the `ensured`
 * insert used (`authorUsername`, no bio, no image).
 */
export async function insertArticle(
  db: Executor,
  a: NewArticle,
  mentions: ArticleMentions,
): Promise<ArticleRow & { notified: boolean }> {
  const jobs =
    mentions.mentioned.length === 0
      ? sql``
      : sql`, jobs as (
        insert into job_outbox (queue, name, payload)
        select 'notifications', 'mention',
               ${JSON.stringify(mentions.payload)}::jsonb || jsonb_build_object('recipientId', p.user_id)
        from a, profiles p
        where lower(p.username) in (${sql.join(mentions.mentioned)}) and p.user_id <> ${a.authorId}
        returning 1
      )`;
  const statement = sql<ArticleRow & { notified: boolean }>`
    with ensured as (
      insert into profiles (user_id, username, bio, image, updated_at)
      values (${a.authorId}, ${a.authorUsername}, null, null, ${new Date(0)})
      on conflict do nothing
    ), a as (
      insert into articles (slug, title, description, body, author_id)
      values (${a.slug}, ${a.title}, ${a.description}, ${a.body}, ${a.authorId})
      returning *
    ), t as (
      insert into article_tags (article_id, tag, position)
      select a.id, t.tag, t.n - 1 from a, unnest(${a.tags}::text[]) with ordinality as t(tag, n)
    )${jobs}
    select a.*, coalesce(p.username, ${a.authorUsername}) as author_username,
           p.bio as author_bio, p.image as author_image,
           ${mentions.mentioned.length === 0 ? sql`false` : sql`exists (select from jobs)`} as notified
    from a left join profiles p on p.user_id = a.author_id`;
  const row = (await statement.execute(db)).rows[0];
  if (!row) throw new Error('insert into articles returned no row');
  return row;
}

/** Changes an article's columns; returns its slug (a new title gives a new one). */
export async function updateArticle(
  db: Executor,
  articleId: string,
  changes: Updateable<ArticlesRow>,
): Promise<string> {
  const row = await db
    .updateTable('articles')
    .set(changes)
    .where('id', '=', articleId)
    .returning('slug')
    .executeTakeFirstOrThrow();
  return row.slug;
}

/** Deletes an article (its tags, comments and favorites go with it: `on delete cascade`). */
export async function deleteArticle(db: Executor, articleId: string): Promise<void> {
  await db.deleteFrom('articles').where('id', '=', articleId).execute();
}

export function findArticleBySlug(db: Executor, slug: string): Promise<ArticleRow | undefined> {
  return selectArticles(db).where('a.slug', '=', slug).executeTakeFirst();
}

/** The tags of each article, in the order the author gave them; one query. */
export async function tagsOf(db: Executor, articleIds: string[]): Promise<Map<string, string[]>> {
  const tags = new Map<string, string[]>(articleIds.map((id) => [id, []]));
  if (articleIds.length === 0) return tags;
  const rows = await db
    .selectFrom('article_tags')
    .select(['article_id', 'tag'])
    .where('article_id', 'in', articleIds)
    .orderBy('article_id')
    .orderBy('position')
    .execute();
  for (const row of rows) tags.get(row.article_id)?.push(row.tag);
  return tags;
}

export async function replaceTags(db: Executor, articleId: string, tags: string[]): Promise<void> {
  await db.deleteFrom('article_tags').where('article_id', '=', articleId).execute();
  if (tags.length === 0) return;
  await db
    .insertInto('article_tags')
    .values(tags.map((tag, position) => ({ article_id: articleId, tag, position })))
    .execute();
}

export interface FavoriteChange {
  userId: string;
  /** The user's name as the gateway vouched for it (their profile row's, if it has none yet). */
  username: string;
  slug: string;
  /** Add (true) or remove (false). */
  on: boolean;
  /**
   * The `favorite` notification job of a new favorite, without what the article gives it (its author as
   * the recipient, its slug and title); none is written on your own article.
   */
  job: object;
}

export interface FavoriteResult {
  /** The article as a reader sees it after the change, with its count after it. */
  article: ArticleRow;
  tags: string[];
  /** Whether a favorite row was added or removed (a repeat changes nothing). */
  changed: boolean;
  notified: boolean;
}

/**
 * Adds or removes a favorite by the article's slug, in one statement (one round trip, atomic by itself):
 * it finds the article, makes sure the user has a profile row, adds (or deletes) the favorite row, counts
 * it on the article only when the row changed, writes the notification job of a new favorite on somebody
 * else's article in `job_outbox`, and returns the article with its author, tags and count after the
 * change: the answer needs no other read. Null when there is no such article, or when it was deleted
 * while the statement ran (the favorite's foreign key fails, 23503, and nothing is written).
 *
 * Every CTE sees the snapshot the statement started with: the count is the update's when the row
 * changed, the snapshot's when it did not.
 */
export async function setFavorite(db: Executor, f: FavoriteChange): Promise<FavoriteResult | null> {
  const row = f.on
    ? sql`insert into favorites (user_id, article_id) select ${f.userId}, id from art
          on conflict do nothing returning article_id`
    : sql`delete from favorites where user_id = ${f.userId} and article_id = (select id from art)
          returning article_id`;
  const count = f.on ? sql`favorites_count + 1` : sql`greatest(favorites_count - 1, 0)`;
  const job = f.on
    ? sql`, jobs as (
          insert into job_outbox (queue, name, payload)
          select 'notifications', 'favorite', ${JSON.stringify(f.job)}::jsonb || jsonb_build_object(
                   'recipientId', art.author_id, 'articleSlug', art.slug, 'articleTitle', art.title)
          from f, art where art.author_id <> ${f.userId}
          returning 1
        )`
    : sql``;
  const statement = sql<ArticleRow & { tag_list: string[]; changed: boolean; notified: boolean }>`
    with art as (
      select id, slug, title, author_id from articles where slug = ${f.slug}
    ), ensured as (
      insert into profiles (user_id, username, bio, image, updated_at)
      select ${f.userId}, ${f.username}, null, null, ${new Date(0)} where exists (select from art)
      on conflict do nothing
    ), f as (${row}), c as (
      update articles set favorites_count = ${count}
      where id = (select article_id from f)
      returning favorites_count
    )${job}
    select a.id, a.slug, a.title, a.description, a.body, a.author_id, a.created_at, a.updated_at,
           coalesce((select favorites_count from c), a.favorites_count) as favorites_count,
           p.username as author_username, p.bio as author_bio, p.image as author_image,
           array(select t.tag from article_tags t where t.article_id = a.id order by t.position) as tag_list,
           exists (select from f) as changed,
           ${f.on ? sql`exists (select from jobs)` : sql`false`} as notified
    from art join articles a on a.id = art.id join profiles p on p.user_id = a.author_id`;
  try {
    const result = (await statement.execute(db)).rows[0];
    if (!result) return null;
    const { tag_list: tags, changed, notified, ...article } = result;
    return { article, tags, changed, notified };
  } catch (err) {
    if ((err as { code?: string }).code === '23503') return null;
    throw err;
  }
}

/** The most used tags, most used first. */
export async function popularTags(db: Executor, limit = 100): Promise<string[]> {
  const rows = await db
    .selectFrom('article_tags')
    .select(['tag', (eb) => eb.fn.countAll<string>().as('uses')])
    .groupBy('tag')
    .orderBy('uses', 'desc')
    .orderBy('tag')
    .limit(limit)
    .execute();
  return rows.map((r) => r.tag);
}

/** Articles by id, in the order of `ids` (a ranking's page); one query. */
export async function findArticlesByIds(db: Executor, ids: string[]): Promise<ArticleRow[]> {
  if (ids.length === 0) return [];
  const rows = await selectArticles(db).where('a.id', 'in', ids).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.flatMap((id) => (byId.has(id) ? [byId.get(id) as ArticleRow] : []));
}
