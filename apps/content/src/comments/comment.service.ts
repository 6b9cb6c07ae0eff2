/**
 * Comments: list (oldest first, a page at a time), add, delete your own. The article is resolved from
 * the cache (`ArticleService.shared`, the same entry article reads use): a comment needs only the
 * article's id, author, slug and title, and the foreign key makes a comment on an article deleted
 * meanwhile fail (404), so a cached article is safe to write against.
 *
 * A page is cached as what every reader sees alike (the comments with their authors' public
 * profiles); the viewer's `following` flags come from the relation sets, as for articles.
 */
import type { LayeredCache } from '@atoll/cache';
import type { Identity } from '@atoll/identity';
import type { JobPayload } from '@atoll/jobs';
import { cacheIds, cacheTags } from '@atoll/redis-keys';
import { AppError } from '@atoll/service-kit';
import type { Kysely } from 'kysely';
import type { ArticleService } from '../articles/article.service.ts';
import type { ContentDatabase } from '../db.ts';
import { excerpt, mentionedUsernames } from '../notifications/notifications.ts';
import type { Relations } from '../relations/relations.ts';
import type { AfterCommit } from '../writes/after-commit.ts';
import {
  type CommentJobs,
  type CommentRow,
  deleteOwnComment,
  insertComment,
  listComments,
} from './comment.repository.ts';

/** What every reader of a comment sees alike: cacheable. */
interface SharedComment {
  id: number;
  createdAt: string;
  updatedAt: string;
  body: string;
  authorId: string;
  author: { username: string; bio: string | null; image: string | null };
}

const shareable = (r: CommentRow): SharedComment => ({
  id: Number(r.id),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
  body: r.body,
  authorId: r.author_id,
  author: { username: r.username, bio: r.bio, image: r.image },
});

/** Comments as the RealWorld shape has them, with the viewer's `following` flag on each author. */
const present = (page: SharedComment[], following: Set<string>) =>
  page.map(({ authorId, author, ...comment }) => ({
    ...comment,
    author: { ...author, following: following.has(authorId) },
  }));

/** A cached page depends on the article's comments, the article, and each commenter's profile. */
const dependencies = (articleId: string) => (page: SharedComment[]) => [
  cacheTags.comments(articleId),
  cacheTags.article(articleId),
  ...new Set(page.map((c) => cacheTags.profile(c.authorId))),
];

/** At most this many mentions of one comment become notifications. */
const MAX_MENTIONS = 20;

export interface CommentServiceDeps {
  db: Kysely<ContentDatabase>;
  articles: ArticleService;
  relations: Relations;
  afterCommit: AfterCommit;
  /** Null reads PostgreSQL every time. */
  cache: LayeredCache | null;
}

export class CommentService {
  private readonly deps: CommentServiceDeps;

  constructor(deps: CommentServiceDeps) {
    this.deps = deps;
  }

  /**
   * A page of an article's comments with the viewer's `following` flags; 404 for an unknown slug. When
   * the viewer follows none of the page's commenters (anonymous readers, and most others), the answer
   * is the same for all of them and comes as bytes, `{"comments": …}`, made once per cached page: on
   * an L1 hit the same array comes back, so it is neither serialized nor UTF-8 encoded again (the
   * WeakMap lets the bytes go with the page when L1 drops it).
   */
  async list(
    slug: string,
    page: { limit: number; offset: number },
    viewer: Identity | null,
  ): Promise<Buffer | { comments: ReturnType<typeof present> }> {
    const { db, articles, cache, relations } = this.deps;
    const article = await articles.shared(slug);
    const load = async () => (await listComments(db, article.id, page)).map(shareable);
    const shared = cache
      ? await cache.get(cacheIds.comments(article.id, page), load, dependencies(article.id))
      : await load();
    const following = await relations.followedAmong(
      viewer?.userId ?? null,
      shared.map((c) => c.authorId),
    );
    if (following.size === 0) return this.unfollowedResponse(shared);
    return { comments: present(shared, following) };
  }

  private unfollowedResponse(shared: SharedComment[]): Buffer {
    let bytes = this.unfollowedBodies.get(shared);
    if (!bytes) {
      bytes = Buffer.from(JSON.stringify({ comments: present(shared, new Set()) }));
      this.unfollowedBodies.set(shared, bytes);
    }
    return bytes;
  }

  private readonly unfollowedBodies = new WeakMap<SharedComment[], Buffer>();

  /** Adds a comment (and its notification jobs, in the same write); returns it as the author sees it. */
  async add(author: Identity, slug: string, body: string) {
    if (body.trim() === '') throw new AppError('VALIDATION_FAILED', { body: ["can't be blank"] });
    const article = await this.deps.articles.shared(slug);
    const common = {
      v: 1 as const,
      actorId: author.userId,
      actorUsername: author.username,
      articleSlug: article.slug,
      articleTitle: article.title,
      excerpt: excerpt(body),
      occurredAt: new Date().toISOString(),
    } satisfies Omit<JobPayload<'notifications', 'comment'>, 'commentId' | 'recipientId'>;
    const jobs: CommentJobs = {
      // Nobody is notified of their own doing.
      jobs:
        article.authorId === author.userId
          ? []
          : [{ name: 'comment', payload: { ...common, recipientId: article.authorId } }],
      mentioned: mentionedUsernames(body)
        .map((n) => n.toLowerCase())
        .slice(0, MAX_MENTIONS),
      mentionPayload: common,
    };
    const row = await insertComment(
      this.deps.db,
      { articleId: article.id, authorId: author.userId, authorUsername: author.username, body },
      jobs,
    );
    // The article was deleted after the cache last saw it.
    if (!row) throw new AppError('NOT_FOUND', { article: ['not found'] });
    await this.deps.afterCommit.commentAdded(
      author.userId,
      { id: row.id, articleId: article.id, createdAt: row.created_at },
      // A mention may name nobody who exists; the relay then finds nothing, as it would at its next poll.
      jobs.jobs.length > 0 || jobs.mentioned.length > 0,
    );
    // Nobody follows themselves: the author's own `following` flag is false without asking.
    const [comment] = present([shareable(row)], new Set());
    return comment!;
  }

  /** Deletes the viewer's own comment: 404 for an unknown one, 403 for someone else's. */
  async remove(viewer: Identity, slug: string, commentId: number): Promise<void> {
    const article = await this.deps.articles.shared(slug);
    const outcome = await deleteOwnComment(this.deps.db, article.id, String(commentId), viewer.userId);
    if (outcome === 'absent') throw new AppError('NOT_FOUND', { comment: ['not found'] });
    if (outcome === 'forbidden') throw new AppError('FORBIDDEN', { comment: ['forbidden'] });
    await this.deps.afterCommit.commentDeleted(viewer.userId, article.id);
  }
}
