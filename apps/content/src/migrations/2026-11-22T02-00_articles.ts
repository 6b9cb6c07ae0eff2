import { type Kysely, sql } from 'kysely';

// Frozen: imports nothing from the app. Articles, their tags (in the author's order), comments,
// favorites and follows. favorites_count is kept on the article, updated in the same transaction as
// the favorite itself, so lists never count rows per article.
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('articles')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('author_id', 'uuid', (c) => c.notNull())
    .addColumn('favorites_count', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('articles_created')
    .on('articles')
    .columns(['created_at desc', 'id desc'])
    .execute();
  await db.schema
    .createIndex('articles_author_created')
    .on('articles')
    .columns(['author_id', 'created_at desc'])
    .execute();

  await db.schema
    .createTable('article_tags')
    .addColumn('article_id', 'bigint', (c) => c.notNull().references('articles.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('article_tags_pk', ['article_id', 'tag'])
    .execute();
  await db.schema.createIndex('article_tags_tag').on('article_tags').columns(['tag', 'article_id']).execute();

  await db.schema
    .createTable('comments')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('article_id', 'bigint', (c) => c.notNull().references('articles.id').onDelete('cascade'))
    .addColumn('author_id', 'uuid', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('comments_article').on('comments').columns(['article_id', 'id']).execute();

  await db.schema
    .createTable('favorites')
    .addColumn('user_id', 'uuid', (c) => c.notNull())
    .addColumn('article_id', 'bigint', (c) => c.notNull().references('articles.id').onDelete('cascade'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('favorites_pk', ['user_id', 'article_id'])
    .execute();
  await db.schema.createIndex('favorites_article').on('favorites').column('article_id').execute();

  await db.schema
    .createTable('follows')
    .addColumn('follower_id', 'uuid', (c) => c.notNull())
    .addColumn('followee_id', 'uuid', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('follows_pk', ['follower_id', 'followee_id'])
    .execute();
  await db.schema.createIndex('follows_followee').on('follows').column('followee_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['follows', 'favorites', 'comments', 'article_tags', 'articles']) {
    await db.schema.dropTable(table).execute();
  }
}
