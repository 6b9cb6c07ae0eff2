/**
 * Who favorited what, who follows whom, and each user's recent activity, kept on redis-cache next to
 * PostgreSQL (the source of truth), per user:
 * - a Set of the article ids a user favorited and one of the user ids they follow, behind the
 *   `favorited` and `following` flags: one SMISMEMBER answers a whole page;
 * - a List of their most recent activity (newest first, at most `activityLength`).
 *
 * The flags must be exact, so the keys are kept in step with the writes, and a missing key (evicted,
 * expired, flushed) is rebuilt from PostgreSQL by the reader that misses it:
 * - a write, after its commit, deletes the user's set (change.lua) and bumps the user's relations
 *   version; the next reader rebuilds it. The set is not changed in place: a favorite and an unfavorite
 *   of the same article in flight together may reach Redis in the opposite order of their commits, and
 *   "add, then remove" applied as "remove, then add" would show the wrong flag for an hour. Activity
 *   (a list, where order is all that can be off) gets its entry on top while the list exists;
 * - a rebuild reads the version, loads from PostgreSQL, and stores only if the version is unchanged
 *   (rebuild.lua). A write that committed after the load's snapshot has either bumped the version
 *   before the store (the store is skipped) or found the rebuilt key: a set it deletes, a list it
 *   pushes its entry onto.
 * - with redis-cache unreachable, reads ask PostgreSQL; writes that could not reach Redis delete the
 *   user's keys as soon as it is back, since they may have missed a change.
 * A set larger than `maxMembers` is not cached (that user's flags are read from PostgreSQL).
 * What stays open: a process that dies between a commit and its Redis update leaves that user's keys
 * behind by one change until their TTL (an hour) runs out.
 */
import { isRedisUnavailable, type RedisClient } from '@atoll/redis';
import { KEY_SPECS, type Keys } from '@atoll/redis-keys';
import type { Kysely } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { CHANGE, READ_SET, REBUILD } from './relations.lua.ts';

export interface Activity {
  type: 'article' | 'comment' | 'favorite';
  articleId: string;
  commentId?: string;
  at: string;
}

export interface RelationsOptions {
  db: Kysely<ContentDatabase>;
  /** The producer client on redis-cache, or null to read everything from PostgreSQL. */
  redis: RedisClient | null;
  keys: Keys;
  ttlMs?: number;
  maxMembers?: number;
  activityLength?: number;
  log: { warn(obj: object, msg?: string): void };
}

export class Relations {
  readonly activityLength: number;
  private readonly db: Kysely<ContentDatabase>;
  private readonly redis: RedisClient | null;
  private readonly keys: Keys;
  private readonly ttlMs: number;
  private readonly maxMembers: number;
  private readonly log: RelationsOptions['log'];
  /** Users whose change could not reach Redis: their keys are deleted when it is back. */
  private readonly missed = new Set<string>();

  constructor(opts: RelationsOptions) {
    this.db = opts.db;
    this.keys = opts.keys;
    this.ttlMs = opts.ttlMs ?? KEY_SPECS.favoritesOf.ttlMs;
    this.maxMembers = opts.maxMembers ?? 5000;
    this.activityLength = opts.activityLength ?? 50;
    this.log = opts.log;
    this.redis = opts.redis;
    this.redis?.on('ready', () => void this.replayMissed());
  }

  /** Which of the articles the viewer has favorited. */
  favoritedAmong(viewerId: string | null, articleIds: string[]): Promise<Set<string>> {
    return this.among(viewerId, articleIds, 'favoritesOf', async (userId, only) => {
      let q = this.db.selectFrom('favorites').select('article_id as id').where('user_id', '=', userId);
      q = only ? q.where('article_id', 'in', only) : q.limit(this.maxMembers + 1);
      return (await q.execute()).map((r) => r.id);
    });
  }

  /** Which of the users the viewer follows. */
  followedAmong(viewerId: string | null, userIds: string[]): Promise<Set<string>> {
    return this.among(viewerId, userIds, 'followingOf', async (userId, only) => {
      let q = this.db.selectFrom('follows').select('followee_id as id').where('follower_id', '=', userId);
      q = only ? q.where('followee_id', 'in', only) : q.limit(this.maxMembers + 1);
      return (await q.execute()).map((r) => r.id);
    });
  }

  /** A user's most recent activity, newest first. */
  async recentActivity(userId: string, limit: number): Promise<Activity[]> {
    const key = this.keys.activityOf(userId);
    try {
      if (this.redis) {
        const cached = await this.redis.lrange(key, 0, limit - 1);
        if (cached.length > 0) return cached.map((raw) => JSON.parse(raw) as Activity);
        const seen = (await this.redis.get(this.keys.relationsVersion(userId))) ?? '';
        const all = await this.loadActivity(userId);
        const json = all.map((a) => JSON.stringify(a));
        await REBUILD.run(
          this.redis,
          [key, this.keys.relationsVersion(userId)],
          seen,
          this.lifetime(),
          'list',
          ...json,
        );
        return all.slice(0, limit);
      }
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
    }
    return (await this.loadActivity(userId)).slice(0, limit);
  }

  /** After a favorite was added or removed (committed): the user's set goes, rebuilt on next read. */
  favorited(userId: string): Promise<void> {
    return this.change(userId, this.keys.favoritesOf(userId), 'del', '');
  }

  /** After a follow was added or removed (committed): the follower's set goes, rebuilt on next read. */
  followed(followerId: string): Promise<void> {
    return this.change(followerId, this.keys.followingOf(followerId), 'del', '');
  }

  /** After something a user did (committed): it goes on top of their recent activity. */
  recordActivity(userId: string, activity: Activity): Promise<void> {
    return this.change(userId, this.keys.activityOf(userId), 'lpush', JSON.stringify(activity));
  }

  /** After something left a user's activity (an unfavorite, a deleted comment): rebuilt on next read. */
  forgetActivity(userId: string): Promise<void> {
    return this.change(userId, this.keys.activityOf(userId), 'del', '');
  }

  private async among(
    viewerId: string | null,
    ids: string[],
    keyName: 'favoritesOf' | 'followingOf',
    load: (userId: string, only?: string[]) => Promise<string[]>,
  ): Promise<Set<string>> {
    const unique = [...new Set(ids)];
    if (!viewerId || unique.length === 0) return new Set();
    const key = this.keys[keyName](viewerId);
    try {
      if (this.redis) {
        const answer = await READ_SET.run(this.redis, [key], ...unique);
        if (answer) return new Set(unique.filter((_, i) => answer[i] === 1));
        const seen = (await this.redis.get(this.keys.relationsVersion(viewerId))) ?? '';
        const all = await load(viewerId);
        if (all.length <= this.maxMembers) {
          await REBUILD.run(
            this.redis,
            [key, this.keys.relationsVersion(viewerId)],
            seen,
            this.lifetime(),
            'set',
            ...all,
          );
          const members = new Set(all);
          return new Set(unique.filter((id) => members.has(id)));
        }
      }
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
    }
    return new Set(await load(viewerId, unique));
  }

  private async change(userId: string, key: string, op: 'lpush' | 'del', entry: string): Promise<void> {
    if (!this.redis) return;
    try {
      await CHANGE.run(
        this.redis,
        [key, this.keys.relationsVersion(userId)],
        op,
        entry,
        this.lifetime() + 60_000,
        this.activityLength,
      );
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err;
      this.missed.add(userId);
      this.log.warn(
        { userId },
        'redis-cache unavailable: relation keys of this user dropped once it is back',
      );
    }
  }

  private async replayMissed(): Promise<void> {
    for (const userId of [...this.missed]) {
      this.missed.delete(userId);
      for (const key of [
        this.keys.favoritesOf(userId),
        this.keys.followingOf(userId),
        this.keys.activityOf(userId),
      ])
        await this.change(userId, key, 'del', '');
    }
  }

  /** The TTL with up to 10% jitter, so keys rebuilt together do not expire together. */
  private lifetime(): number {
    return this.ttlMs + Math.floor(Math.random() * this.ttlMs * 0.1);
  }

  /** The latest articles, comments and favorites of a user, merged, newest first: three queries. */
  private async loadActivity(userId: string): Promise<Activity[]> {
    const n = this.activityLength;
    const [articles, comments, favorites] = await Promise.all([
      this.db
        .selectFrom('articles')
        .select(['id', 'created_at'])
        .where('author_id', '=', userId)
        .orderBy('created_at', 'desc')
        .limit(n)
        .execute(),
      this.db
        .selectFrom('comments')
        .select(['id', 'article_id', 'created_at'])
        .where('author_id', '=', userId)
        .orderBy('created_at', 'desc')
        .limit(n)
        .execute(),
      this.db
        .selectFrom('favorites')
        .select(['article_id', 'created_at'])
        .where('user_id', '=', userId)
        .orderBy('created_at', 'desc')
        .limit(n)
        .execute(),
    ]);
    const all: Activity[] = [
      ...articles.map((r) => ({ type: 'article' as const, articleId: r.id, at: r.created_at.toISOString() })),
      ...comments.map((r) => ({
        type: 'comment' as const,
        articleId: r.article_id,
        commentId: String(r.id),
        at: r.created_at.toISOString(),
      })),
      ...favorites.map((r) => ({
        type: 'favorite' as const,
        articleId: r.article_id,
        at: r.created_at.toISOString(),
      })),
    ];
    return all.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0)).slice(0, n);
  }
}
