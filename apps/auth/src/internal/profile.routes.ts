/**
 * `GET /internal/profiles/:username` — a user's public profile, for services whose projection of the
 * user events has not caught up yet (content asks once, then caches the answer). Not in the gateway's
 * route table, so API consumers cannot reach it; it returns only what the public profile shows.
 *
 * The one route of a service that answers without an identity assertion (`config: { identity: false }`):
 * its caller is content, which cannot make assertions (only the gateway holds the signing key), and it
 * changes nothing and answers a public profile (what `GET /api/profiles/:username` shows anyone) plus the
 * account's id and last update. docs/security.md, "Trust behind the gateway: identity".
 */
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { type Kysely, sql } from 'kysely';
import Type from 'typebox';
import type { AuthDatabase } from '../db.ts';

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }) });

const InternalProfile = Type.Object({
  profile: Type.Object({
    userId: Type.String(),
    username: Type.String(),
    bio: Type.Union([Type.String(), Type.Null()]),
    image: Type.Union([Type.String(), Type.Null()]),
    updatedAt: Type.String(),
  }),
});

const internalProfileRoutes: FastifyPluginAsyncTypebox<{ db: Kysely<AuthDatabase> }> = async (
  app,
  { db },
) => {
  app.get(
    '/internal/profiles/:username',
    { config: { identity: false }, schema: { params: Params, response: { 200: InternalProfile } } },
    async (request) => {
      const user = await db
        .selectFrom('users')
        .select(['id', 'username', 'bio', 'image', 'updated_at'])
        .where(sql<string>`lower(username)`, '=', request.params.username.toLowerCase())
        .executeTakeFirst();
      if (!user) throw new AppError('NOT_FOUND', { profile: ['not found'] });
      return {
        profile: {
          userId: String(user.id),
          username: user.username,
          bio: user.bio,
          image: user.image,
          updatedAt: user.updated_at.toISOString(),
        },
      };
    },
  );
};

export default internalProfileRoutes;
