/**
 * The two rankings content keeps on redis-cache:
 * - trending articles: favorites with time decay, scored like "hot" lists are: log10(favorites) plus
 *   the creation time in units of 12.5 hours, so one more order of magnitude of favorites is worth
 *   12.5 hours of age, and a score never needs recomputing as time passes, only when favorites change;
 * - the author leaderboard: favorites received across all of an author's articles.
 * Both are rebuilt from PostgreSQL whenever missing (see ranking.ts).
 */

import type { RedisClient } from '@atoll/redis';
import { KEY_SPECS, type Keys } from '@atoll/redis-keys';
import { type Kysely, sql } from 'kysely';
import type { ContentDatabase } from '../db.ts';
import { Ranking } from './ranking.ts';

const SIZE = 1000;

export function trendingScore(favorites: number, createdAt: Date): number {
  return Math.log10(Math.max(favorites, 1)) + createdAt.getTime() / 1000 / 45_000;
}

export interface Rankings {
  trending: Ranking;
  leaderboard: Ranking;
}

export function createRankings(
  db: Kysely<ContentDatabase>,
  redis: RedisClient,
  keys: Keys,
  log: { warn(obj: object, msg?: string): void },
): Rankings {
  return {
    trending: new Ranking({
      redis,
      key: keys.ranking('trending'),
      leaseKey: keys.rebuildLease('trending'),
      leaseMs: KEY_SPECS.rebuildLease.ttlMs,
      ttlMs: KEY_SPECS.ranking.ttlMs,
      log,
      load: async () => {
        const { rows } = await sql<{ member: string; score: number }>`
          select id::text as member,
                 log(greatest(favorites_count, 1)) + extract(epoch from created_at) / 45000 as score
          from articles order by score desc, id desc limit ${SIZE}`.execute(db);
        return rows.map((r) => ({ member: r.member, score: Number(r.score) }));
      },
    }),
    leaderboard: new Ranking({
      redis,
      key: keys.ranking('leaderboard'),
      leaseKey: keys.rebuildLease('leaderboard'),
      leaseMs: KEY_SPECS.rebuildLease.ttlMs,
      ttlMs: KEY_SPECS.ranking.ttlMs,
      log,
      load: async () => {
        const { rows } = await sql<{ member: string; score: string }>`
          select author_id::text as member, sum(favorites_count) as score from articles
          group by author_id having sum(favorites_count) > 0
          order by score desc, author_id limit ${SIZE}`.execute(db);
        return rows.map((r) => ({ member: r.member, score: Number(r.score) }));
      },
    }),
  };
}
