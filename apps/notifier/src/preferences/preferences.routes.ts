/**
 * `GET /api/notifications/preferences` and `PUT` (partial: what is given changes, the rest stays):
 * `{"preferences": {"email": {"follow": "instant"|"digest"|"off", ...}, "digest": "daily"|"weekly"|"off"}}`.
 */
import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import Type from 'typebox';
import type { NotifierDatabase } from '../db.ts';
import { getPreferences, savePreferences } from './preferences.repository.ts';

const EmailChoice = Type.Union([Type.Literal('instant'), Type.Literal('digest'), Type.Literal('off')]);
const DigestChoice = Type.Union([Type.Literal('daily'), Type.Literal('weekly'), Type.Literal('off')]);
const TYPES = ['follow', 'favorite', 'comment', 'mention'] as const;

const Full = Type.Object({
  preferences: Type.Object({
    email: Type.Object(
      Object.fromEntries(TYPES.map((t) => [t, EmailChoice])) as Record<
        (typeof TYPES)[number],
        typeof EmailChoice
      >,
    ),
    digest: DigestChoice,
  }),
});
const Patch = Type.Object({
  preferences: Type.Object(
    {
      email: Type.Optional(
        Type.Object(
          Object.fromEntries(TYPES.map((t) => [t, Type.Optional(EmailChoice)])) as Record<
            (typeof TYPES)[number],
            ReturnType<typeof Type.Optional<typeof EmailChoice>>
          >,
          { additionalProperties: false },
        ),
      ),
      digest: Type.Optional(DigestChoice),
    },
    { additionalProperties: false },
  ),
});

const preferenceRoutes: FastifyPluginAsyncTypebox<{ db: Kysely<NotifierDatabase> }> = async (app, { db }) => {
  app.get('/api/notifications/preferences', { schema: { response: { 200: Full } } }, async (request) => ({
    preferences: await getPreferences(db, requireIdentity(request).userId),
  }));

  app.put(
    '/api/notifications/preferences',
    { schema: { body: Patch, response: { 200: Full } } },
    async (request) => {
      const me = requireIdentity(request).userId;
      const current = await getPreferences(db, me);
      const patch = request.body.preferences;
      const next = {
        email: { ...current.email, ...(patch.email as Partial<typeof current.email> | undefined) },
        digest: patch.digest ?? current.digest,
      };
      await savePreferences(db, me, next);
      return { preferences: next };
    },
  );
};

export default preferenceRoutes;
