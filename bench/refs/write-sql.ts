/**
 * The SQL that content runs for each write, statement for statement, as kysely builds it in
 * apps/content/src (captured from content's own queries: apps/content/test/write-sql.test.ts checks that
 * these lists still match what content sends). `same-sql-writes.ts` runs them on a bare Fastify + pg, so
 * that a write through atoll is compared with the database work it cannot avoid.
 *
 * Left out, on both sides of the comparison's meaning: the reads that build the response (content serves
 * them from its cache when it can) and the outbox relay that runs after the commit on its own schedule.
 */

/**
 * Comments take their article from content's cache (article.repository: `findArticleBySlug` when it
 * misses), so the reference looks each slug up once and keeps it.
 */
export const FIND_ARTICLE =
  'select "a".*, "p"."username" as "author_username", "p"."bio" as "author_bio", "p"."image" as "author_image" from "articles" as "a" inner join "profiles" as "p" on "p"."user_id" = "a"."author_id" where "a"."slug" = $1';

/** Each write's statements, in order (a transaction's `begin` and `commit` included, as pg receives them). */
export const WRITE_TRANSACTIONS = {
  /**
   * POST /api/articles with two tags and no mentions (article.repository: `insertArticle`): one statement,
   * no transaction around it (the profile, the article, its tags and its mention jobs, here none, are
   * written by one atomic statement, which also returns the answer).
   */
  createArticle: [
    'with ensured as ( insert into profiles (user_id, username, bio, image, updated_at) values ($1, $2, null, null, $3) on conflict do nothing ), a as ( insert into articles (slug, title, description, body, author_id) values ($4, $5, $6, $7, $8) returning * ), t as ( insert into article_tags (article_id, tag, position) select a.id, t.tag, t.n - 1 from a, unnest($9::text[]) with ordinality as t(tag, n) ) select a.*, coalesce(p.username, $10) as author_username, p.bio as author_bio, p.image as author_image, false as notified from a left join profiles p on p.user_id = a.author_id',
  ],
  /**
   * POST /api/articles/:slug/comments on your own article, without mentions (comments/comment.repository.ts:
   * `insertComment`): one statement, no transaction around it (the profile, the comment and its outbox
   * rows, here none, are written by one atomic statement). The article comes from content's cache.
   */
  addComment: [
    "with ensured as ( insert into profiles (user_id, username, bio, image, updated_at) values ($1, $2, null, null, $3) on conflict do nothing ), c as ( insert into comments (article_id, author_id, body) values ($4, $5, $6) returning id, body, created_at, updated_at, author_id ), jobs as ( insert into job_outbox (queue, name, payload) select 'notifications', j.name, j.payload || jsonb_build_object('commentId', c.id) from c, jsonb_to_recordset($7::jsonb) as j(name text, payload jsonb) ) select c.id, c.body, c.created_at, c.updated_at, c.author_id, coalesce(p.username, $8) as username, p.bio, p.image from c left join profiles p on p.user_id = c.author_id",
  ],
  /**
   * POST /api/articles/:slug/favorite and DELETE (article.repository: `setFavorite`): one statement each,
   * no transaction around it. It finds the article by its slug, writes the profile, the row, the count
   * only when the row changed and the notification job of a new favorite (here none: your own article),
   * and returns the article after the change, which is the answer: no cache, no other read.
   */
  favorite: [
    "with art as ( select id, slug, title, author_id from articles where slug = $1 ), ensured as ( insert into profiles (user_id, username, bio, image, updated_at) select $2, $3, null, null, $4 where exists (select from art) on conflict do nothing ), f as (insert into favorites (user_id, article_id) select $5, id from art on conflict do nothing returning article_id), c as ( update articles set favorites_count = favorites_count + 1 where id = (select article_id from f) returning favorites_count ), jobs as ( insert into job_outbox (queue, name, payload) select 'notifications', 'favorite', $6::jsonb || jsonb_build_object( 'recipientId', art.author_id, 'articleSlug', art.slug, 'articleTitle', art.title) from f, art where art.author_id <> $7 returning 1 ) select a.id, a.slug, a.title, a.description, a.body, a.author_id, a.created_at, a.updated_at, coalesce((select favorites_count from c), a.favorites_count) as favorites_count, p.username as author_username, p.bio as author_bio, p.image as author_image, array(select t.tag from article_tags t where t.article_id = a.id order by t.position) as tag_list, exists (select from f) as changed, exists (select from jobs) as notified from art join articles a on a.id = art.id join profiles p on p.user_id = a.author_id",
  ],
  unfavorite: [
    'with art as ( select id, slug, title, author_id from articles where slug = $1 ), ensured as ( insert into profiles (user_id, username, bio, image, updated_at) select $2, $3, null, null, $4 where exists (select from art) on conflict do nothing ), f as (delete from favorites where user_id = $5 and article_id = (select id from art) returning article_id), c as ( update articles set favorites_count = greatest(favorites_count - 1, 0) where id = (select article_id from f) returning favorites_count ) select a.id, a.slug, a.title, a.description, a.body, a.author_id, a.created_at, a.updated_at, coalesce((select favorites_count from c), a.favorites_count) as favorites_count, p.username as author_username, p.bio as author_bio, p.image as author_image, array(select t.tag from article_tags t where t.article_id = a.id order by t.position) as tag_list, exists (select from f) as changed, false as notified from art join articles a on a.id = art.id join profiles p on p.user_id = a.author_id',
  ],
} as const;

export type Write = keyof typeof WRITE_TRANSACTIONS;
