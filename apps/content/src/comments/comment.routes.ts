/**
 * RealWorld comments: list (oldest first, at most MAX_COMMENTS_PAGE a page, `limit` and `offset`), add
 * (201), delete (204, the comment's author only). The rules and queries are in comment.service.ts.
 */
import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  CommentParams,
  CommentsQuery,
  MultipleCommentsResponse,
  NewCommentBody,
  SingleCommentResponse,
  SlugParams,
} from '../articles/article.schemas.ts';
import type { CommentService } from './comment.service.ts';

const commentRoutes: FastifyPluginAsyncTypebox<{ comments: CommentService }> = async (app, { comments }) => {
  app.get(
    '/api/articles/:slug/comments',
    {
      schema: { params: SlugParams, querystring: CommentsQuery, response: { 200: MultipleCommentsResponse } },
    },
    async (request, reply) => {
      const page = await comments.list(request.params.slug, request.query, request.identity);
      if (!Buffer.isBuffer(page)) return page;
      // The same bytes for every reader who follows none of the commenters (see CommentService.list);
      // Fastify sends a Buffer as it is, the type provider only knows the JSON shape.
      return reply.type('application/json; charset=utf-8').send(page as never);
    },
  );

  app.post(
    '/api/articles/:slug/comments',
    { schema: { params: SlugParams, body: NewCommentBody, response: { 201: SingleCommentResponse } } },
    async (request, reply) => {
      const comment = await comments.add(
        requireIdentity(request),
        request.params.slug,
        request.body.comment.body,
      );
      return reply.code(201).send({ comment });
    },
  );

  app.delete(
    '/api/articles/:slug/comments/:id',
    { schema: { params: CommentParams } },
    async (request, reply) => {
      await comments.remove(requireIdentity(request), request.params.slug, request.params.id);
      return reply.code(204).send();
    },
  );
};

export default commentRoutes;
