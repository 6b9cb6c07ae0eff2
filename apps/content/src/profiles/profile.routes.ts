/**
 * RealWorld profiles: `GET /api/profiles/:username`, `POST|DELETE /api/profiles/:username/follow`.
 */
import { type Identity, requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import Type from 'typebox';
import { ProfileResponse } from '../articles/article.schemas.ts';
import type { ContentDatabase } from '../db.ts';
import { recordNotification } from '../notifications/notifications.ts';
import {
  ensureProfile,
  findProfileByUsername,
  follow,
  followedAmong,
  type ProfileRow,
  unfollow,
} from './profile.repository.ts';

export const toProfile = (row: Pick<ProfileRow, 'username' | 'bio' | 'image'>, following: boolean) => ({
  username: row.username,
  bio: row.bio,
  image: row.image,
  following,
});

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }) });

const profileRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<ContentDatabase>;
  notifications: { kick(): void };
}> = async (app, { db, notifications }) => {
  const load = async (username: string) => {
    const profile = await findProfileByUsername(db, username);
    if (!profile) throw new AppError('NOT_FOUND', { profile: ['not found'] });
    return profile;
  };
  const answer = async (profile: ProfileRow, viewer: Identity | null) => ({
    profile: toProfile(
      profile,
      (await followedAmong(db, viewer?.userId ?? null, [profile.user_id])).has(profile.user_id),
    ),
  });

  app.get(
    '/api/profiles/:username',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => answer(await load(request.params.username), request.identity),
  );

  app.post(
    '/api/profiles/:username/follow',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => {
      const viewer = requireIdentity(request);
      const profile = await load(request.params.username);
      if (profile.user_id === viewer.userId)
        throw new AppError('VALIDATION_FAILED', { profile: ['cannot follow yourself'] });
      await db.transaction().execute(async (trx) => {
        await ensureProfile(trx, viewer.userId, viewer.username);
        if (await follow(trx, viewer.userId, profile.user_id)) {
          await recordNotification(trx, 'follow', {
            v: 1,
            actorId: viewer.userId,
            actorUsername: viewer.username,
            recipientId: profile.user_id,
            occurredAt: new Date().toISOString(),
          });
        }
      });
      notifications.kick();
      return answer(profile, viewer);
    },
  );

  app.delete(
    '/api/profiles/:username/follow',
    { schema: { params: Params, response: { 200: ProfileResponse } } },
    async (request) => {
      const viewer = requireIdentity(request);
      const profile = await load(request.params.username);
      await unfollow(db, viewer.userId, profile.user_id);
      return answer(profile, viewer);
    },
  );
};

export default profileRoutes;
