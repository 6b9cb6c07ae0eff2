/**
 * `GET /internal/profiles/:username` — a user's public profile, for services whose projection of the
 * user events has not caught up yet (content asks once, then caches the answer). Not in the gateway's
 * route table, so API consumers cannot reach it; it returns only what the public profile shows.
 *
 * It takes no identity assertion (`config: { identity: false }`): its caller is content, which cannot
 * make assertions (only the gateway holds the signing key). Instead the caller proves itself with
 * `Authorization: Bearer <INTERNAL_TOKEN>`, a credential only auth and content hold (content's
 * AUTH_INTERNAL_TOKEN), compared in constant time; anything else is 401, and with no INTERNAL_TOKEN
 * configured the route refuses everyone. So neither the gateway nor the notifier, nor any other
 * process that reaches auth's port, can call it. It changes nothing and answers a public profile (what
 * `GET /api/profiles/:username` shows anyone) plus the account's id and last update.
 * docs/security.md, "Trust behind the gateway: identity".
 */
import { createHash, timingSafeEqual } from 'node:crypto';
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

const digest = (value: string) => createHash('sha256').update(value).digest();

const internalProfileRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<AuthDatabase>;
  /** The bearer token a caller must send; null: every call is refused. */
  token: string | null;
}> = async (app, { db, token }) => {
  const expected = token ? digest(`Bearer ${token}`) : null;
  app.get(
    '/internal/profiles/:username',
    { config: { identity: false }, schema: { params: Params, response: { 200: InternalProfile } } },
    async (request) => {
      // Digests have equal lengths, so the comparison takes the same time whatever was sent.
      const sent = digest(request.headers.authorization ?? '');
      if (!expected || !timingSafeEqual(sent, expected)) throw new AppError('INTERNAL_UNAUTHORIZED');
      const user = await db
        .selectFrom('users')
        .select(['id', 'username', 'bio', 'image', 'updated_at'])
        .where(sql<string>`lower(username)`, '=', sql<string>`lower(${request.params.username})`)
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
