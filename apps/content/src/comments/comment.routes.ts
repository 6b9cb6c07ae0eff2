/**
 * RealWorld comments: list (oldest first, at most MAX_COMMENTS_PAGE a page, `limit` and `offset`), add
 * (201), delete (204, the comment's author only).
 */
import { requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Kysely } from 'kysely';
import {
  CommentParams,
  CommentsQuery,
  MultipleCommentsResponse,
  NewCommentBody,
  SingleCommentResponse,
  SlugParams,
} from '../articles/article.schemas.ts';
import type { ArticleService } from '../articles/article.service.ts';
import type { ContentDatabase } from '../db.ts';
import { excerpt, mentionedUsers, recordNotification } from '../notifications/notifications.ts';
import { ensureProfile } from '../profiles/profile.repository.ts';
import { toProfile } from '../profiles/profile.routes.ts';
import type { Relations } from '../relations/relations.ts';

const commentRoutes: FastifyPluginAsyncTypebox<{
  db: Kysely<ContentDatabase>;
  articles: ArticleService;
  relations: Relations;
  notifications: { kick(): void };
}> = async (app, { db, articles, relations, notifications }) => {
  const select = () =>
    db
      .selectFrom('comments as c')
      .innerJoin('profiles as p', 'p.user_id', 'c.author_id')
      .select([
        'c.id',
        'c.body',
        'c.created_at',
        'c.updated_at',
        'c.author_id',
        'p.username',
        'p.bio',
        'p.image',
      ]);
  type Row = Awaited<ReturnType<ReturnType<typeof select>['execute']>>[number];
  const present = async (rows: Row[], viewerId: string | null) => {
    const following = await relations.followedAmong(
      viewerId,
      rows.map((r) => r.author_id),
    );
    return rows.map((r) => ({
      id: Number(r.id),
      createdAt: r.created_at.toISOString(),
      updatedAt: r.updated_at.toISOString(),
      body: r.body,
      author: toProfile(r, following.has(r.author_id)),
    }));
  };

  app.get(
    '/api/articles/:slug/comments',
    {
      schema: { params: SlugParams, querystring: CommentsQuery, response: { 200: MultipleCommentsResponse } },
    },
    async (request) => {
      const article = await articles.load(request.params.slug);
      const { limit, offset } = request.query;
      const rows = await select()
        .where('c.article_id', '=', article.id)
        .orderBy('c.id')
        .limit(limit)
        .offset(offset)
        .execute();
      return { comments: await present(rows, request.identity?.userId ?? null) };
    },
  );

  app.post(
    '/api/articles/:slug/comments',
    { schema: { params: SlugParams, body: NewCommentBody, response: { 201: SingleCommentResponse } } },
    async (request, reply) => {
      const author = requireIdentity(request);
      const body = request.body.comment.body;
      if (body.trim() === '') throw new AppError('VALIDATION_FAILED', { body: ["can't be blank"] });
      const article = await articles.load(request.params.slug);
      const created = await db.transaction().execute(async (trx) => {
        await ensureProfile(trx, author.userId, author.username);
        const row = await trx
          .insertInto('comments')
          .values({ article_id: article.id, author_id: author.userId, body })
          .returning(['id', 'created_at'])
          .executeTakeFirstOrThrow();
        const common = {
          v: 1 as const,
          actorId: author.userId,
          actorUsername: author.username,
          articleSlug: article.slug,
          articleTitle: article.title,
          commentId: Number(row.id),
          excerpt: excerpt(body),
          occurredAt: new Date().toISOString(),
        };
        await recordNotification(trx, 'comment', { ...common, recipientId: article.author_id });
        for (const mentioned of await mentionedUsers(trx, body)) {
          await recordNotification(trx, 'mention', { ...common, recipientId: mentioned.user_id });
        }
        return row;
      });
      notifications.kick();
      await relations.recordActivity(author.userId, {
        type: 'comment',
        articleId: article.id,
        commentId: String(created.id),
        at: created.created_at.toISOString(),
      });
      const rows = await select().where('c.id', '=', created.id).execute();
      const [comment] = await present(rows, author.userId);
      return reply.code(201).send({ comment: comment! });
    },
  );

  app.delete(
    '/api/articles/:slug/comments/:id',
    { schema: { params: CommentParams } },
    async (request, reply) => {
      const viewer = requireIdentity(request);
      const article = await articles.load(request.params.slug);
      const comment = await db
        .selectFrom('comments')
        .select(['id', 'author_id'])
        .where('id', '=', String(request.params.id))
        .where('article_id', '=', article.id)
        .executeTakeFirst();
      if (!comment) throw new AppError('NOT_FOUND', { comment: ['not found'] });
      if (comment.author_id !== viewer.userId) throw new AppError('FORBIDDEN', { comment: ['forbidden'] });
      await db.deleteFrom('comments').where('id', '=', comment.id).execute();
      await relations.forgetActivity(viewer.userId);
      return reply.code(204).send();
    },
  );
};

export default commentRoutes;
