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
    async (request) => ({
      comments: await comments.list(request.params.slug, request.query, request.identity),
    }),
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
