import type { ColumnType, Generated } from 'kysely';
import type { ProfilesDatabase } from './profiles/profile.table.ts';

/** The content schema as the code sees it (the migrations are the source of truth). */
export interface ArticlesRow {
  id: Generated<string>;
  slug: string;
  title: string;
  description: string;
  body: string;
  author_id: string;
  favorites_count: Generated<number>;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface ArticleTagsRow {
  article_id: string;
  tag: string;
  position: number;
}

export interface CommentsRow {
  id: Generated<string>;
  article_id: string;
  author_id: string;
  body: string;
  created_at: Generated<Date>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface FavoritesRow {
  user_id: string;
  article_id: string;
  created_at: Generated<Date>;
}

export interface FollowsRow {
  follower_id: string;
  followee_id: string;
  created_at: Generated<Date>;
}

export interface JobOutboxRow {
  id: Generated<string>;
  queue: string;
  name: string;
  payload: ColumnType<unknown, string, string>;
  created_at: Generated<Date>;
  published_at: Date | null;
}

export interface ContentDatabase extends ProfilesDatabase {
  job_outbox: JobOutboxRow;
  articles: ArticlesRow;
  article_tags: ArticleTagsRow;
  comments: CommentsRow;
  favorites: FavoritesRow;
  follows: FollowsRow;
}
