/**
 * The notifications API (through the gateway, for the signed-in user):
 * - `GET /api/notifications?limit=&before=` — newest first, a page of at most `limit` (default 20) older
 *   than the id `before`, with the unread count and the `before` of the next page (null at the end);
 * - `GET /api/notifications?after=<id>` — what came after that id, oldest first: how a live stream
 *   that reconnects with `Last-Event-ID` catches up (the gateway asks this);
 * - `POST /api/notifications/read` with `{"notifications": {"ids": [..]}}` or `{"notifications": {"all": true}}`.
 */
import { LiveNotificationSchema } from '@atoll/events';
import { requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import Type from 'typebox';
import type { NotifierDatabase } from '../db.ts';
import { listAfter, listPage, markRead, toApi, unreadCount } from './notification.repository.ts';

const Id = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

/** The same shape as a live event's: a stream's catch-up reads these pages (@atoll/events). */
const Notification = LiveNotificationSchema;

const notificationRoutes: FastifyPluginAsyncTypebox<{ db: Kysely<NotifierDatabase> }> = async (
  app,
  { db },
) => {
  app.get(
    '/api/notifications',
    {
      schema: {
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          before: Type.Optional(Id),
          after: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
        }),
        response: {
          200: Type.Object({
            notifications: Type.Array(Notification),
            unreadCount: Type.Integer(),
            next: Type.Union([Type.Integer(), Type.Null()]),
          }),
        },
      },
    },
    async (request) => {
      const me = requireIdentity(request).userId;
      const { limit, before, after } = request.query;
      if (before !== undefined && after !== undefined) {
        throw new AppError('VALIDATION_FAILED', { after: ['cannot be combined with before'] });
      }
      const [rows, unread] = await Promise.all([
        after !== undefined
          ? listAfter(db, me, String(after), limit)
          : listPage(db, me, limit, before === undefined ? undefined : String(before)),
        unreadCount(db, me),
      ]);
      const last = rows.at(-1);
      const next = rows.length === limit && last ? Number(last.id) : null;
      return { notifications: rows.map(toApi), unreadCount: unread, next };
    },
  );

  app.post(
    '/api/notifications/read',
    {
      schema: {
        body: Type.Object({
          // One object with both fields optional rather than a union: Ajv's removeAdditional would strip
          // `all` while trying the `ids` branch. Exactly one of them is checked below.
          notifications: Type.Object({
            ids: Type.Optional(Type.Array(Id, { minItems: 1, maxItems: 500 })),
            all: Type.Optional(Type.Literal(true)),
          }),
        }),
        response: { 200: Type.Object({ updated: Type.Integer(), unreadCount: Type.Integer() }) },
      },
    },
    async (request) => {
      const me = requireIdentity(request).userId;
      const { ids, all } = request.body.notifications;
      if ((ids === undefined) === (all === undefined)) {
        throw new AppError('VALIDATION_FAILED', { notifications: ['give either ids or all'] });
      }
      const updated = await markRead(db, me, all ? 'all' : (ids ?? []).map(String));
      return { updated, unreadCount: await unreadCount(db, me) };
    },
  );
};

export default notificationRoutes;
