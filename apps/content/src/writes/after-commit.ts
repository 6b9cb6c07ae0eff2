/**
 * What every content write does once its transaction has committed, in one place: tell the outbox
 * relay when the write put jobs in the outbox (`notified`; the relay would otherwise only find them at
 * its next poll, and a write without jobs costs it no query), invalidate what the cache shows of the change (on every instance), apply the
 * change to the per-user relation keys (flags, activity) and to the rankings. A write service commits,
 * then calls the one method here that names its change; it never reaches into the cache, the relations
 * or the rankings itself.
 *
 * The cache invalidation goes first; the other effects of a change touch other keys and none waits for
 * another, so they are then sent together (`all`: the client pipelines what is sent in the same tick, so
 * they cost one round trip instead of one each; a failure of one still lets the others finish). Other
 * instances drop their L1 copies when the invalidation's bus message reaches them, which it does while
 * those effects are in flight, before the write answers.
 *
 * Which cache ids and tags a change touches is the table in @atoll/redis-keys (cache-ids.ts).
 */
import type { LayeredCache } from '@atoll/cache';
import { cacheIds, cacheTags } from '@atoll/redis-keys';
import { MAX_COMMENTS_PAGE } from '../articles/article.schemas.ts';
import { listTagsOf } from '../articles/list-cache.ts';
import { type Rankings, trendingScore } from '../rankings/rankings.ts';
import type { Relations } from '../relations/relations.ts';

/** Waits for every effect, then fails with the first failure if one failed. */
async function all(effects: Array<Promise<unknown> | undefined>): Promise<void> {
  const failed = (await Promise.allSettled(effects)).find(
    (r): r is PromiseRejectedResult => r.status === 'rejected',
  );
  if (failed) throw failed.reason;
}

/** An article as a change to it is known after the commit. */
export interface ChangedArticle {
  id: string;
  slug: string;
  authorId: string;
}

export interface AfterCommitDeps {
  relations: Relations;
  /** The outbox relay, told after each commit that may have written notification jobs. */
  notifications?: { kick(): void };
  rankings?: Rankings | null;
  /** Null when content runs without its cache. */
  cache?: LayeredCache | null;
}

export class AfterCommit {
  private readonly relations: Relations;
  private readonly notifications: { kick(): void };
  private readonly rankings: Rankings | null;
  private readonly cache: LayeredCache | null;

  constructor(deps: AfterCommitDeps) {
    this.relations = deps.relations;
    this.notifications = deps.notifications ?? { kick() {} };
    this.rankings = deps.rankings ?? null;
    this.cache = deps.cache ?? null;
  }

  /** A new article: the lists it joins, the tags in use, its author's activity, trending. */
  async articleCreated(
    article: ChangedArticle & { createdAt: Date; tags: string[] },
    notified: boolean,
  ): Promise<void> {
    if (notified) this.notifications.kick();
    await this.cache?.invalidate({
      tags: [...listTagsOf({ all: true, authorId: article.authorId, tags: article.tags }), cacheTags.tags],
    });
    await all([
      this.relations.recordActivity(article.authorId, {
        type: 'article',
        articleId: article.id,
        at: article.createdAt.toISOString(),
      }),
      this.rankings?.trending.adjust(article.id, 'set', trendingScore(0, article.createdAt)),
    ]);
  }

  /**
   * An edited article: what shows it (by its old slug, and by id), and when its tags changed
   * (`retagged`: the old and new ones), the tag lists and the tags in use.
   */
  async articleEdited(article: ChangedArticle, retagged: string[]): Promise<void> {
    await this.forgetArticle(
      article,
      retagged.length > 0 ? [...listTagsOf({ tags: retagged }), cacheTags.tags] : [],
    );
  }

  /** A deleted article: what shows it (its comments too), every list it was in, the rankings. */
  async articleDeleted(
    article: ChangedArticle & { tags: string[]; favoritedBy: string[]; favoritesCount: number },
  ): Promise<void> {
    await this.forgetArticle(article, [
      ...listTagsOf({
        all: true,
        authorId: article.authorId,
        tags: article.tags,
        favoritedBy: article.favoritedBy,
      }),
      cacheTags.tags,
    ]);
    await all([
      this.rankings?.trending.remove(article.id),
      article.favoritesCount > 0
        ? this.rankings?.leaderboard.adjust(article.authorId, 'incr', -article.favoritesCount)
        : undefined,
    ]);
  }

  /**
   * A favorite added or removed (`changed`: whether a row was): the user's flags and activity, the
   * article's count, their "favorited by" lists, the rankings. `favoritesCount` is the count after it,
   * as the write returned it (no second read).
   */
  async favoriteChanged(
    userId: string,
    article: ChangedArticle & { favoritesCount: number; createdAt: Date },
    on: boolean,
    changed: boolean,
    notified: boolean,
  ): Promise<void> {
    if (notified) this.notifications.kick();
    if (!changed) return;
    await this.forgetArticle(article, listTagsOf({ favoritedBy: [userId] }));
    await all([
      this.relations.favorited(userId),
      on
        ? this.relations.recordActivity(userId, {
            type: 'favorite',
            articleId: article.id,
            at: new Date().toISOString(),
          })
        : this.relations.forgetActivity(userId),
      this.rankings?.trending.adjust(
        article.id,
        'set',
        trendingScore(article.favoritesCount, article.createdAt),
      ),
      this.rankings?.leaderboard.adjust(article.authorId, 'incr', on ? 1 : -1),
    ]);
  }

  /** A new comment: the article's comment pages, the commenter's activity. */
  async commentAdded(
    authorId: string,
    comment: { id: string; articleId: string; createdAt: Date },
    notified: boolean,
  ): Promise<void> {
    if (notified) this.notifications.kick();
    await this.forgetComments(comment.articleId);
    await this.relations.recordActivity(authorId, {
      type: 'comment',
      articleId: comment.articleId,
      commentId: comment.id,
      at: comment.createdAt.toISOString(),
    });
  }

  /** A deleted comment: the article's comment pages, the commenter's activity (rebuilt on next read). */
  async commentDeleted(authorId: string, articleId: string): Promise<void> {
    await this.forgetComments(articleId);
    await this.relations.forgetActivity(authorId);
  }

  /** A follow added or removed (`changed`: whether a row was): the follower's `following` flags. */
  async followChanged(followerId: string, changed: boolean, notified: boolean): Promise<void> {
    if (notified) this.notifications.kick();
    if (changed) await this.relations.followed(followerId);
  }

  /**
   * A user.* event applied. Whatever was cached as "nobody has this name" goes in any case (a row with
   * the name may have been written since by a first article or follow). When what readers see of the
   * profile changed, so does every read that shows it, and the profile's own entry by name: a read that
   * loaded the old row while the event was applied then meets a tombstone and is not kept, even if it
   * had not joined its tag yet.
   */
  async profileEvent(userId: string, username: string, changed: boolean): Promise<void> {
    await this.cache?.invalidate(
      changed
        ? {
            ids: [cacheIds.profile(username)],
            tags: [cacheTags.profile(userId), cacheTags.listName(username)],
          }
        : { tags: [cacheTags.listName(username)] },
    );
  }

  /**
   * Every cached page of an article's comments. The page RealWorld clients read (no query) is named by
   * its id too: a read that loaded it before the comment committed then meets a tombstone and is not
   * kept, even if it had not joined its tags yet. Other pages rely on their tag alone (such a read can
   * keep its page until the entry's TTL; see docs/decisions.md, "What content caches").
   */
  private async forgetComments(articleId: string): Promise<void> {
    await this.cache?.invalidate({
      ids: [cacheIds.comments(articleId, { limit: MAX_COMMENTS_PAGE, offset: 0 })],
      tags: [cacheTags.comments(articleId)],
    });
  }

  /** Every cached read of an article (by slug and by id) and the given lists. */
  private async forgetArticle(article: { id: string; slug: string }, lists: string[]): Promise<void> {
    await this.cache?.invalidate({
      ids: [cacheIds.article(article.slug)],
      tags: [cacheTags.article(article.id), ...lists],
    });
  }
}
