/**
 * Articles: the RealWorld rules on top of the repository. Facts clients rely on: tagList keeps the
 * author's order (duplicates dropped); an update without tagList keeps the tags and `[]` clears them;
 * duplicate titles get distinct slugs; a new title means a new slug; only the author may change or
 * delete an article (403), an unknown slug is 404.
 */
import { randomBytes } from 'node:crypto';
import type { LayeredCache } from '@atoll/cache';
import type { Identity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { excerpt, mentionedUsers, recordNotification } from '../notifications/notifications.ts';
import { ensureProfile, followedAmong } from '../profiles/profile.repository.ts';
import { toProfile } from '../profiles/profile.routes.ts';
import { type Rankings, trendingScore } from '../rankings/rankings.ts';
import {
  type ArticleRow,
  addFavorite,
  favoritedAmong,
  findArticleBySlug,
  findArticlesByIds,
  type ListFilter,
  listArticles,
  removeFavorite,
  replaceTags,
  tagsOf,
} from './article.repository.ts';

/** What every reader of an article sees alike: cacheable. */
interface SharedArticle {
  id: string;
  authorId: string;
  slug: string;
  title: string;
  description: string;
  body: string;
  tagList: string[];
  createdAt: string;
  updatedAt: string;
  favoritesCount: number;
  author: { username: string; bio: string | null; image: string | null };
}

export interface ArticleInput {
  title?: string | undefined;
  description?: string | undefined;
  body?: string | undefined;
  tagList?: string[] | undefined;
}

/** `How to Train Your Dragon!` → `how-to-train-your-dragon-k3x9q2`: readable, and unique by its suffix. */
export function slugify(title: string): string {
  const base = title
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 80);
  const suffix = randomBytes(5)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, 'x');
  return base ? `${base}-${suffix}` : suffix;
}

const cleanTags = (tags: string[]) => [...new Set(tags.map((t) => t.trim()).filter((t) => t.length > 0))];

function blankCheck(input: ArticleInput, required: boolean) {
  const errors: Record<string, string[]> = {};
  for (const field of ['title', 'description', 'body'] as const) {
    const value = input[field];
    if ((value === undefined && required) || (value !== undefined && value.trim() === ''))
      errors[field] = ["can't be blank"];
  }
  if (Object.keys(errors).length > 0) throw new AppError('VALIDATION_FAILED', errors);
}

export class ArticleService {
  private readonly db: Kysely<ContentDatabase>;
  private readonly notifications: { kick(): void };
  private readonly rankings: Rankings | null;
  private readonly cache: LayeredCache | null;

  /**
   * `notifications` is told after each commit that wrote notification jobs (the outbox relay);
   * `rankings` follow favorites, new and deleted articles; `cache` holds single-article reads.
   */
  constructor(
    db: Kysely<ContentDatabase>,
    notifications: { kick(): void } = { kick() {} },
    rankings: Rankings | null = null,
    cache: LayeredCache | null = null,
  ) {
    this.db = db;
    this.notifications = notifications;
    this.rankings = rankings;
    this.cache = cache;
  }

  /**
   * The part of an article that is the same for every reader, from the cache (L1, L2) or PostgreSQL.
   * It depends on the article and on its author's profile: a change to either invalidates it.
   */
  private async shared(slug: string): Promise<SharedArticle> {
    const load = async (): Promise<SharedArticle> => {
      const row = await this.load(slug);
      const tags = await tagsOf(this.db, [row.id]);
      return {
        id: row.id,
        authorId: row.author_id,
        slug: row.slug,
        title: row.title,
        description: row.description,
        body: row.body,
        tagList: tags.get(row.id) ?? [],
        createdAt: row.created_at.toISOString(),
        updatedAt: row.updated_at.toISOString(),
        favoritesCount: row.favorites_count,
        author: { username: row.author_username, bio: row.author_bio, image: row.author_image },
      };
    };
    if (!this.cache) return load();
    return this.cache.get(`article:${slug}`, load, (a) => [`article:${a.id}`, `profile:${a.authorId}`]);
  }

  /** Forgets every cached read of an article (after its write has committed). */
  private async forget(article: { id: string; slug: string }): Promise<void> {
    await this.cache?.invalidate({ ids: [`article:${article.slug}`], tags: [`article:${article.id}`] });
  }

  /** Trending articles, best first, as a list page. */
  async trending(page: { limit: number; offset: number }, viewer: Identity | null) {
    if (!this.rankings) return { articles: [], articlesCount: 0 };
    const { entries, total } = await this.rankings.trending.page(page.offset, page.limit);
    const rows = await findArticlesByIds(
      this.db,
      entries.map((e) => e.member),
    );
    return { articles: await this.present(rows, viewer), articlesCount: total };
  }

  /** API objects for a page of rows: three more queries at most, whatever the page size. */
  async present(rows: ArticleRow[], viewer: Identity | null) {
    const ids = rows.map((r) => r.id);
    const [tags, favorited, following] = await Promise.all([
      tagsOf(this.db, ids),
      favoritedAmong(this.db, viewer?.userId ?? null, ids),
      followedAmong(
        this.db,
        viewer?.userId ?? null,
        rows.map((r) => r.author_id),
      ),
    ]);
    return rows.map((r) => ({
      slug: r.slug,
      title: r.title,
      description: r.description,
      body: r.body,
      tagList: tags.get(r.id) ?? [],
      createdAt: r.created_at.toISOString(),
      updatedAt: r.updated_at.toISOString(),
      favorited: favorited.has(r.id),
      favoritesCount: r.favorites_count,
      author: toProfile(
        { username: r.author_username, bio: r.author_bio, image: r.author_image },
        following.has(r.author_id),
      ),
    }));
  }

  async list(filter: ListFilter, page: { limit: number; offset: number }, viewer: Identity | null) {
    const { rows, total } = await listArticles(this.db, filter, page);
    return { articles: await this.present(rows, viewer), articlesCount: total };
  }

  /** One article: shared part from the cache, the viewer's own flags (favorited, following) fresh. */
  async get(slug: string, viewer: Identity | null) {
    const { id, authorId, author, ...article } = await this.shared(slug);
    const [favorited, following] = viewer
      ? await Promise.all([
          favoritedAmong(this.db, viewer.userId, [id]),
          followedAmong(this.db, viewer.userId, [authorId]),
        ])
      : [new Set<string>(), new Set<string>()];
    return {
      ...article,
      favorited: favorited.has(id),
      author: { ...author, following: following.has(authorId) },
    };
  }

  async load(slug: string): Promise<ArticleRow> {
    const row = await findArticleBySlug(this.db, slug);
    if (!row) throw new AppError('NOT_FOUND', { article: ['not found'] });
    return row;
  }

  async create(
    author: Identity,
    input: Required<Omit<ArticleInput, 'tagList'>> & { tagList?: string[] | undefined },
  ) {
    blankCheck(input, true);
    const created = await this.db.transaction().execute(async (trx) => {
      await ensureProfile(trx, author.userId, author.username);
      const row = await trx
        .insertInto('articles')
        .values({
          slug: slugify(input.title),
          title: input.title.trim(),
          description: input.description.trim(),
          body: input.body,
          author_id: author.userId,
        })
        .returning(['id', 'slug', 'title', 'created_at'])
        .executeTakeFirstOrThrow();
      await replaceTags(trx, row.id, cleanTags(input.tagList ?? []));
      for (const mentioned of await mentionedUsers(trx, input.body)) {
        await recordNotification(trx, 'mention', {
          v: 1,
          actorId: author.userId,
          actorUsername: author.username,
          recipientId: mentioned.user_id,
          articleSlug: row.slug,
          articleTitle: row.title,
          commentId: null,
          excerpt: excerpt(input.body),
          occurredAt: new Date().toISOString(),
        });
      }
      return row;
    });
    this.notifications.kick();
    await this.rankings?.trending.adjust(created.id, 'set', trendingScore(0, created.created_at));
    return this.get(created.slug, author);
  }

  async update(editor: Identity, slug: string, input: ArticleInput) {
    blankCheck(input, false);
    const current = await this.load(slug);
    if (current.author_id !== editor.userId) throw new AppError('FORBIDDEN', { article: ['forbidden'] });
    const newSlug = await this.db.transaction().execute(async (trx) => {
      const titleChanged = input.title !== undefined && input.title.trim() !== current.title;
      const row = await trx
        .updateTable('articles')
        .set({
          ...(input.title !== undefined ? { title: input.title.trim() } : {}),
          ...(titleChanged ? { slug: slugify(input.title as string) } : {}),
          ...(input.description !== undefined ? { description: input.description.trim() } : {}),
          ...(input.body !== undefined ? { body: input.body } : {}),
          updated_at: new Date(),
        })
        .where('id', '=', current.id)
        .returning('slug')
        .executeTakeFirstOrThrow();
      if (input.tagList !== undefined) await replaceTags(trx, current.id, cleanTags(input.tagList));
      return row.slug;
    });
    await this.forget(current);
    return this.get(newSlug, editor);
  }

  async remove(editor: Identity, slug: string): Promise<void> {
    const current = await this.load(slug);
    if (current.author_id !== editor.userId) throw new AppError('FORBIDDEN', { article: ['forbidden'] });
    await this.db.deleteFrom('articles').where('id', '=', current.id).execute();
    await this.forget(current);
    await this.rankings?.trending.remove(current.id);
    if (current.favorites_count > 0)
      await this.rankings?.leaderboard.adjust(current.author_id, 'incr', -current.favorites_count);
  }

  async favorite(viewer: Identity, slug: string, on: boolean) {
    const article = await this.load(slug);
    const changed = await this.db.transaction().execute(async (trx) => {
      await ensureProfile(trx, viewer.userId, viewer.username);
      if (!on) return removeFavorite(trx, viewer.userId, article.id);
      const added = await addFavorite(trx, viewer.userId, article.id);
      if (added) {
        await recordNotification(trx, 'favorite', {
          v: 1,
          actorId: viewer.userId,
          actorUsername: viewer.username,
          recipientId: article.author_id,
          articleSlug: article.slug,
          articleTitle: article.title,
          occurredAt: new Date().toISOString(),
        });
      }
      return added;
    });
    this.notifications.kick();
    if (changed) {
      await this.forget(article);
      // The count this change made (no second read: a ranking tolerates a concurrent favorite's lag).
      const favorites = Math.max(article.favorites_count + (on ? 1 : -1), 0);
      await this.rankings?.trending.adjust(article.id, 'set', trendingScore(favorites, article.created_at));
      await this.rankings?.leaderboard.adjust(article.author_id, 'incr', on ? 1 : -1);
    }
    return this.get(slug, viewer);
  }
}
