/**
 * RealWorld profiles: `GET /api/profiles/:username`, `POST|DELETE /api/profiles/:username/follow`,
 * and atoll's `GET /api/profiles/:username/activity` (a user's recent articles, comments, favorites).
 */
import { type Identity, requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import Type from 'typebox';
import { ActivityResponse, ProfileResponse } from '../articles/article.schemas.ts';
import type { ArticleService } from '../articles/article.service.ts';
import type { Relations } from '../relations/relations.ts';
import type { FollowService } from './follow.service.ts';
import type { ProfileDirectory, PublicProfile } from './profile.directory.ts';

export const toProfile = (p: Pick<PublicProfile, 'username' | 'bio' | 'image'>, following: boolean) => ({
  username: p.username,
  bio: p.bio,
  image: p.image,
  following,
});

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }) });
const ActivityQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 50, default: 20 }) });

const profileRoutes: FastifyPluginAsyncTypebox<{
  profiles: ProfileDirectory;
  relations: Relations;
  articles: ArticleService;
  follows: FollowService;
}> = async (app, { profiles, relations, articles, follows }) => {
  const answer = async (profile: PublicProfile, viewer: Identity | null) => ({
    profile: toProfile(
      profile,
      (await relations.followedAmong(viewer?.userId ?? null, [profile.userId])).has(profile.userId),
    ),
  });

  app.get(
    '/api/profiles/:username',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => answer(await profiles.get(request.params.username), request.identity),
  );

  app.get(
    '/api/profiles/:username/activity',
    { schema: { params: Params, querystring: ActivityQuery, response: { 200: ActivityResponse } } },
    async (request) => {
      const profile = await profiles.get(request.params.username);
      const recent = await relations.recentActivity(profile.userId, relations.activityLength);
      const summaries = new Map(
        (await articles.summaries([...new Set(recent.map((a) => a.articleId))])).map((s) => [s.id, s]),
      );
      // An article deleted since is left out; so is the activity on it.
      const shown = recent.flatMap((a) => {
        const article = summaries.get(a.articleId);
        if (!article) return [];
        const on = { slug: article.slug, title: article.title, author: article.author.username };
        return [
          {
            type: a.type,
            createdAt: a.at,
            article: on,
            ...(a.commentId ? { commentId: Number(a.commentId) } : {}),
          },
        ];
      });
      return { activity: shown.slice(0, request.query.limit) };
    },
  );

  app.post(
    '/api/profiles/:username/follow',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => {
      const viewer = requireIdentity(request);
      const profile = await profiles.get(request.params.username);
      await follows.follow(viewer, profile);
      return answer(profile, viewer);
    },
  );

  app.delete(
    '/api/profiles/:username/follow',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => {
      const viewer = requireIdentity(request);
      const profile = await profiles.get(request.params.username);
      await follows.unfollow(viewer, profile);
      return answer(profile, viewer);
    },
  );
};

export default profileRoutes;
