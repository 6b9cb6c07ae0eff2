/**
 * RealWorld profiles: `GET /api/profiles/:username`, `POST|DELETE /api/profiles/:username/follow`,
 * and atoll's `GET /api/profiles/:username/activity` (a user's recent articles, comments, favorites).
 */
import { type Identity, requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import Type from 'typebox';
import { ActivityResponse, ProfileResponse } from '../articles/article.schemas.ts';
import type { ArticleService } from '../articles/article.service.ts';
import type { ContentDatabase } from '../db.ts';
import { recordNotification } from '../notifications/notifications.ts';
import type { Relations } from '../relations/relations.ts';
import type { ProfileDirectory, PublicProfile } from './profile.directory.ts';
import { ensureProfile, follow, unfollow } from './profile.repository.ts';

export const toProfile = (p: Pick<PublicProfile, 'username' | 'bio' | 'image'>, following: boolean) => ({
  username: p.username,
  bio: p.bio,
  image: p.image,
  following,
});

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }) });
const ActivityQuery = Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 50, default: 20 }) });

const profileRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<ContentDatabase>;
  profiles: ProfileDirectory;
  relations: Relations;
  articles: ArticleService;
  notifications: { kick(): void };
}> = async (app, { db, profiles, relations, articles, notifications }) => {
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
      if (profile.userId === viewer.userId)
        throw new AppError('VALIDATION_FAILED', { profile: ['cannot follow yourself'] });
      const added = await db.transaction().execute(async (trx) => {
        await ensureProfile(trx, viewer.userId, viewer.username);
        if (!(await follow(trx, viewer.userId, profile.userId))) return false;
        await recordNotification(trx, 'follow', {
          v: 1,
          actorId: viewer.userId,
          actorUsername: viewer.username,
          recipientId: profile.userId,
          occurredAt: new Date().toISOString(),
        });
        return true;
      });
      notifications.kick();
      if (added) await relations.followed(viewer.userId, profile.userId, true);
      return answer(profile, viewer);
    },
  );

  app.delete(
    '/api/profiles/:username/follow',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => {
      const viewer = requireIdentity(request);
      const profile = await profiles.get(request.params.username);
      await unfollow(db, viewer.userId, profile.userId);
      await relations.followed(viewer.userId, profile.userId, false);
      return answer(profile, viewer);
    },
  );
};

export default profileRoutes;
