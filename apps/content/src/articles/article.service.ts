/**
 * Articles: the RealWorld rules on top of the repository. Facts clients rely on: tagList keeps the
 * author's order (duplicates dropped); an update without tagList keeps the tags and `[]` clears them;
 * duplicate titles get distinct slugs; a new title means a new slug; only the author may change or
 * delete an article (403), an unknown slug is 404.
 */
import { randomBytes } from 'node:crypto';
import type { LayeredCache } from '@atoll/cache';
import type { Identity } from '@atoll/identity';
import type { JobPayload } from '@atoll/jobs';
import { cacheIds, cacheTags, type ListQuery } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { excerpt, mentionedUsernames } from '../notifications/notifications.ts';
import { findProfileByUsername } from '../profiles/profile.repository.ts';
import type { Rankings } from '../rankings/rankings.ts';
import type { Relations } from '../relations/relations.ts';
import type { AfterCommit } from '../writes/after-commit.ts';
import {
  type ArticleRow,
  deleteArticle,
  favoritersOf,
  findArticleBySlug,
  findArticlesByIds,
  insertArticle,
  type ListFilter,
  listArticleIds,
  replaceTags,
  setFavorite,
  tagsOf,
  updateArticle,
} from './article.repository.ts';

/** At most this many mentions of one article become notifications. */
const MAX_MENTIONS = 20;

/** What every reader of a list item sees alike: cacheable. */
interface SharedSummary {
  id: string;
  authorId: string;
  slug: string;
  title: string;
  description: string;
  tagList: string[];
  createdAt: string;
  updatedAt: string;
  favoritesCount: number;
  author: { username: string; bio: string | null; image: string | null };
}

/** What every reader of an article sees alike: cacheable. */
export type SharedArticle = SharedSummary & { body: string };

function shareable(row: ArticleRow, tags: string[]): SharedArticle {
  return {
    id: row.id,
    authorId: row.author_id,
    slug: row.slug,
    title: row.title,
    description: row.description,
    body: row.body,
    tagList: tags,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    favoritesCount: row.favorites_count,
    author: { username: row.author_username, bio: row.author_bio, image: row.author_image },
  };
}

/** An article row as the after-commit effects know it. */
const changed = (row: ArticleRow) => ({ id: row.id, slug: row.slug, authorId: row.author_id });

/** A cached article or summary depends on the article and on its author's profile. */
const dependencies = (a: SharedSummary) => [cacheTags.article(a.id), cacheTags.profile(a.authorId)];

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

export interface ArticleServiceDeps {
  db: Kysely<ContentDatabase>;
  /** The per-user favorites, follows and activity behind the viewer's flags. */
  relations: Relations;
  /** What each write does once committed (cache invalidation, relations, rankings, the outbox relay). */
  afterCommit: AfterCommit;
  /** Trending (read here; written by `afterCommit`). */
  rankings?: Rankings | null;
  /** The three-layer cache for articles, list pages and tags; null reads PostgreSQL every time. */
  cache?: LayeredCache | null;
}

export class ArticleService {
  private readonly db: Kysely<ContentDatabase>;
  private readonly relations: Relations;
  private readonly afterCommit: AfterCommit;
  private readonly rankings: Rankings | null;
  private readonly cache: LayeredCache | null;

  constructor(deps: ArticleServiceDeps) {
    this.db = deps.db;
    this.relations = deps.relations;
    this.afterCommit = deps.afterCommit;
    this.rankings = deps.rankings ?? null;
    this.cache = deps.cache ?? null;
  }

  /**
   * The part of an article that is the same for every reader, from the cache (L1, L2) or PostgreSQL;
   * 404 for an unknown slug.
   */
  async shared(slug: string): Promise<SharedArticle> {
    const load = async (): Promise<SharedArticle> => {
      const row = await this.load(slug);
      return shareable(row, (await tagsOf(this.db, [row.id])).get(row.id) ?? []);
    };
    if (!this.cache) return load();
    return this.cache.get(cacheIds.article(slug), load, dependencies);
  }

  /**
   * The shared part of many list items (or of activity entries) at once: cached ones from L1/L2, the
   * rest in two queries; in the order given, deleted articles left out.
   */
  async summaries(ids: string[]): Promise<SharedSummary[]> {
    const load = async (wanted: string[]) => {
      // Ids may come from the cache instance (a ranking): only well-formed ones reach PostgreSQL.
      const rows = await findArticlesByIds(
        this.db,
        wanted.filter((id) => /^\d{1,18}$/.test(id)),
      );
      const tags = await tagsOf(
        this.db,
        rows.map((r) => r.id),
      );
      return new Map(
        rows.map((r) => {
          const { body: _body, ...summary } = shareable(r, tags.get(r.id) ?? []);
          return [r.id, summary as SharedSummary];
        }),
      );
    };
    if (!this.cache) {
      const loaded = await load(ids);
      return ids.flatMap((id) => loaded.get(id) ?? []);
    }
    const articleOf = new Map(ids.map((id) => [cacheIds.summary(id), id]));
    const found = await this.cache.getMany(
      [...articleOf.keys()],
      async (missing) => {
        const loaded = await load(missing.map((m) => articleOf.get(m) as string));
        return new Map([...loaded].map(([id, s]) => [cacheIds.summary(id), s]));
      },
      dependencies,
    );
    return ids.flatMap((id) => found.get(cacheIds.summary(id)) ?? []);
  }

  /** List items for a page of ids, with the viewer's own flags: no body, a constant number of queries. */
  async page(ids: string[], total: number, viewer: Identity | null) {
    const items = await this.summaries(ids);
    const [favorited, following] = await Promise.all([
      this.relations.favoritedAmong(
        viewer?.userId ?? null,
        items.map((a) => a.id),
      ),
      this.relations.followedAmong(
        viewer?.userId ?? null,
        items.map((a) => a.authorId),
      ),
    ]);
    return {
      articles: items.map(({ id, authorId, author, ...item }) => ({
        ...item,
        favorited: favorited.has(id),
        author: { ...author, following: following.has(authorId) },
      })),
      articlesCount: total,
    };
  }

  /** Trending articles, best first, as a list page. */
  async trending(page: { limit: number; offset: number }, viewer: Identity | null) {
    if (!this.rankings) return { articles: [], articlesCount: 0 };
    const { entries, total } = await this.rankings.trending.page(page.offset, page.limit);
    return this.page(
      entries.map((e) => e.member),
      total,
      viewer,
    );
  }

  /**
   * `GET /api/articles`: the page's ids and total come from the cache (a list entry, invalidated by
   * what changes the list: see @atoll/redis-keys cache-ids.ts), the items from the per-article summaries.
   */
  async list(query: ListQuery, page: { limit: number; offset: number }, viewer: Identity | null) {
    const load = async () => {
      const filter: ListFilter = { tag: query.tag };
      const deps = query.tag === undefined ? [] : [cacheTags.listTag(query.tag)];
      for (const [field, name] of [
        ['authorId', query.author],
        ['favoritedBy', query.favorited],
      ] as const) {
        if (name === undefined) continue;
        const profile = await findProfileByUsername(this.db, name);
        if (!profile) return { ids: [], total: 0, deps: [cacheTags.listName(name)] };
        filter[field] = profile.user_id;
        const tag = field === 'authorId' ? cacheTags.listBy : cacheTags.listFavoritedBy;
        deps.push(tag(profile.user_id), cacheTags.profile(profile.user_id));
      }
      return {
        ...(await listArticleIds(this.db, filter, page)),
        deps: deps.length ? deps : [cacheTags.listAll],
      };
    };
    const index = this.cache
      ? await this.cache.get(cacheIds.list(query, page), load, (found) => found.deps)
      : await load();
    return this.page(index.ids, index.total, viewer);
  }

  /** The feed: articles by the authors the viewer follows. Personal, so only its items are cached. */
  async feed(viewer: Identity, page: { limit: number; offset: number }) {
    const { ids, total } = await listArticleIds(this.db, { followedBy: viewer.userId }, page);
    return this.page(ids, total, viewer);
  }

  /** One article: shared part from the cache, the viewer's own flags (favorited, following) fresh. */
  async get(slug: string, viewer: Identity | null) {
    const { id, authorId, author, ...article } = await this.shared(slug);
    const [favorited, following] = await Promise.all([
      this.relations.favoritedAmong(viewer?.userId ?? null, [id]),
      this.relations.followedAmong(viewer?.userId ?? null, [authorId]),
    ]);
    return {
      ...article,
      favorited: favorited.has(id),
      author: { ...author, following: following.has(authorId) },
    };
  }

  /**
   * `{"article": …}` for an anonymous reader, as bytes, made once per cached value: on an L1 hit the
   * same object comes back, so the response is neither serialized nor UTF-8 encoded again. (The
   * WeakMap lets the bytes go with the value when L1 drops it.)
   */
  async anonymousResponse(slug: string): Promise<Buffer> {
    const shared = await this.shared(slug);
    let bytes = this.anonymousBodies.get(shared);
    if (!bytes) {
      const { id: _id, authorId: _authorId, author, ...article } = shared;
      const view = { ...article, favorited: false, author: { ...author, following: false } };
      bytes = Buffer.from(JSON.stringify({ article: view }));
      this.anonymousBodies.set(shared, bytes);
    }
    return bytes;
  }

  private readonly anonymousBodies = new WeakMap<SharedArticle, Buffer>();

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
    const tags = cleanTags(input.tagList ?? []);
    const slug = slugify(input.title);
    const title = input.title.trim();
    const mentionPayload = {
      v: 1 as const,
      actorId: author.userId,
      actorUsername: author.username,
      articleSlug: slug,
      articleTitle: title,
      commentId: null,
      excerpt: excerpt(input.body),
      occurredAt: new Date().toISOString(),
    } satisfies Omit<JobPayload<'notifications', 'mention'>, 'recipientId'>;
    const row = await insertArticle(
      this.db,
      {
        slug,
        title,
        description: input.description.trim(),
        body: input.body,
        authorId: author.userId,
        authorUsername: author.username,
        tags,
      },
      {
        mentioned: mentionedUsernames(input.body)
          .map((n) => n.toLowerCase())
          .slice(0, MAX_MENTIONS),
        payload: mentionPayload,
      },
    );
    await this.afterCommit.articleCreated(
      { id: row.id, slug: row.slug, authorId: author.userId, createdAt: row.created_at, tags },
      row.notified,
    );
    // The answer needs no read: nobody has favorited the article yet, and nobody follows themselves.
    const { id: _id, authorId: _authorId, author: profile, ...article } = shareable(row, tags);
    return { ...article, favorited: false, author: { ...profile, following: false } };
  }

  async update(editor: Identity, slug: string, input: ArticleInput) {
    blankCheck(input, false);
    const current = await this.load(slug);
    if (current.author_id !== editor.userId) throw new AppError('FORBIDDEN', { article: ['forbidden'] });
    const before =
      input.tagList === undefined ? [] : ((await tagsOf(this.db, [current.id])).get(current.id) ?? []);
    const newSlug = await this.db.transaction().execute(async (trx) => {
      const titleChanged = input.title !== undefined && input.title.trim() !== current.title;
      const updated = await updateArticle(trx, current.id, {
        ...(input.title !== undefined ? { title: input.title.trim() } : {}),
        ...(titleChanged ? { slug: slugify(input.title as string) } : {}),
        ...(input.description !== undefined ? { description: input.description.trim() } : {}),
        ...(input.body !== undefined ? { body: input.body } : {}),
        updated_at: new Date(),
      });
      if (input.tagList !== undefined) await replaceTags(trx, current.id, cleanTags(input.tagList));
      return updated;
    });
    // A tag change moves the article between tag lists; other edits change only the article itself.
    const retagged = input.tagList === undefined ? [] : [...before, ...cleanTags(input.tagList)];
    await this.afterCommit.articleEdited(changed(current), retagged);
    return this.get(newSlug, editor);
  }

  async remove(editor: Identity, slug: string): Promise<void> {
    const current = await this.load(slug);
    if (current.author_id !== editor.userId) throw new AppError('FORBIDDEN', { article: ['forbidden'] });
    const [tags, favoriters] = await Promise.all([
      tagsOf(this.db, [current.id]),
      favoritersOf(this.db, current.id),
    ]);
    await deleteArticle(this.db, current.id);
    await this.afterCommit.articleDeleted({
      ...changed(current),
      tags: tags.get(current.id) ?? [],
      favoritedBy: favoriters,
      favoritesCount: current.favorites_count,
    });
  }

  /**
   * Favorites (or unfavorites) an article for the viewer: one statement finds the article by its slug,
   * writes the change and returns the article after it (article.repository: `setFavorite`), and the answer
   * is made from that. The cache is not read: a change of the count is what makes it let the article go.
   */
  async favorite(viewer: Identity, slug: string, on: boolean) {
    const job: Omit<
      JobPayload<'notifications', 'favorite'>,
      'recipientId' | 'articleSlug' | 'articleTitle'
    > = {
      v: 1,
      actorId: viewer.userId,
      actorUsername: viewer.username,
      occurredAt: new Date().toISOString(),
    };
    const result = await setFavorite(this.db, {
      userId: viewer.userId,
      username: viewer.username,
      slug,
      on,
      job,
    });
    if (!result) throw new AppError('NOT_FOUND', { article: ['not found'] });
    const article = shareable(result.article, result.tags);
    const { favoritesCount } = article;
    // The answer's one other read (whether the viewer follows the author) goes with the effects.
    const [following] = await Promise.all([
      this.relations.followedAmong(viewer.userId, [article.authorId]),
      this.afterCommit.favoriteChanged(
        viewer.userId,
        {
          id: article.id,
          slug: article.slug,
          authorId: article.authorId,
          favoritesCount,
          createdAt: result.article.created_at,
        },
        on,
        result.changed,
        result.notified,
      ),
    ]);
    const { id: _id, authorId, author, ...rest } = article;
    return { ...rest, favorited: on, author: { ...author, following: following.has(authorId) } };
  }
}
