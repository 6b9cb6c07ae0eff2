/**
 * - `GET /api/articles/trending`  trending articles (favorites with time decay), paged like lists
 * - `GET /api/leaderboard`        authors by favorites received, paged
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import Type from 'typebox';
import { FeedQuery, MultipleArticlesResponse, Profile } from '../articles/article.schemas.ts';
import type { ArticleService } from '../articles/article.service.ts';
import type { ContentDatabase } from '../db.ts';
import type { Relations } from '../relations/relations.ts';
import type { Rankings } from './rankings.ts';

const LeaderboardResponse = Type.Object({
  leaderboard: Type.Array(
    Type.Object({ rank: Type.Integer(), favoritesReceived: Type.Integer(), profile: Profile }),
  ),
  count: Type.Integer(),
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const rankingRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<ContentDatabase>;
  articles: ArticleService;
  rankings: Rankings;
  relations: Relations;
}> = async (app, { db, articles, rankings, relations }) => {
  app.get(
    '/api/articles/trending',
    { schema: { querystring: FeedQuery, response: { 200: MultipleArticlesResponse } } },
    async (request) => articles.trending(request.query, request.identity),
  );

  app.get(
    '/api/leaderboard',
    { schema: { querystring: FeedQuery, response: { 200: LeaderboardResponse } } },
    async (request) => {
      const { limit, offset } = request.query;
      const { entries, total } = await rankings.leaderboard.page(offset, limit);
      // Members come from the cache instance: only well-formed ids reach PostgreSQL.
      const ids = entries.map((e) => e.member).filter((m) => UUID.test(m));
      const [profiles, following] = await Promise.all([
        ids.length ? db.selectFrom('profiles').selectAll().where('user_id', 'in', ids).execute() : [],
        relations.followedAmong(request.identity?.userId ?? null, ids),
      ]);
      const byId = new Map(profiles.map((p) => [p.user_id, p]));
      return {
        leaderboard: entries.flatMap((e, i) => {
          const p = byId.get(e.member);
          if (!p) return [];
          const profile = {
            username: p.username,
            bio: p.bio,
            image: p.image,
            following: following.has(p.user_id),
          };
          return [{ rank: offset + i + 1, favoritesReceived: e.score, profile }];
        }),
        count: total,
      };
    },
  );
};

export default rankingRoutes;
