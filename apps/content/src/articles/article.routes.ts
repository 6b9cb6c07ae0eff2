/**
 * RealWorld articles: list, feed, get, create (201), update, delete (204), favorite, unfavorite.
 */
import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import {
  FeedQuery,
  ListQuery,
  MultipleArticlesResponse,
  NewArticleBody,
  SingleArticleResponse,
  SlugParams,
  UpdateArticleBody,
} from './article.schemas.ts';
import type { ArticleService } from './article.service.ts';

/** Resolves in the check phase of this turn of the event loop, after the I/O it read. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const articleRoutes: FastifyPluginAsyncTypebox<{ articles: ArticleService }> = async (app, { articles }) => {
  app.get(
    '/api/articles',
    { schema: { querystring: ListQuery, response: { 200: MultipleArticlesResponse } } },
    async (request) => {
      const { tag, author, favorited, limit, offset } = request.query;
      return articles.list({ tag, author, favorited }, { limit, offset }, request.identity);
    },
  );

  app.get(
    '/api/articles/feed',
    { schema: { querystring: FeedQuery, response: { 200: MultipleArticlesResponse } } },
    async (request) => {
      return articles.feed(requireIdentity(request), request.query);
    },
  );

  app.get(
    '/api/articles/:slug',
    { schema: { params: SlugParams, response: { 200: SingleArticleResponse } } },
    async (request, reply) => {
      // The hot path: anonymous readers all get the same bytes (see anonymousResponse).
      if (!request.identity) {
        const bytes = await articles.anonymousResponse(request.params.slug);
        // An L1 hit is ready in the turn of the event loop that read the request. Answered one turn
        // later, after the other requests read in that turn, it ran at 1.4–1.8× the rate under the bench
        // (2026-12-06, two pairs of runs alternating the two; bench/README.md, "L2 faster than L1").
        await nextTurn();
        // Fastify sends a Buffer as it is (no serializer); the type provider only knows the JSON shape.
        return reply.type('application/json; charset=utf-8').send(bytes as never);
      }
      return { article: await articles.get(request.params.slug, request.identity) };
    },
  );

  app.post(
    '/api/articles',
    { schema: { body: NewArticleBody, response: { 201: SingleArticleResponse } } },
    async (request, reply) => {
      const article = await articles.create(requireIdentity(request), request.body.article);
      return reply.code(201).send({ article });
    },
  );

  app.put(
    '/api/articles/:slug',
    { schema: { params: SlugParams, body: UpdateArticleBody, response: { 200: SingleArticleResponse } } },
    async (request) => ({
      article: await articles.update(requireIdentity(request), request.params.slug, request.body.article),
    }),
  );

  app.delete('/api/articles/:slug', { schema: { params: SlugParams } }, async (request, reply) => {
    await articles.remove(requireIdentity(request), request.params.slug);
    return reply.code(204).send();
  });

  for (const [method, on] of [
    ['POST', true],
    ['DELETE', false],
  ] as const) {
    app.route({
      method,
      url: '/api/articles/:slug/favorite',
      schema: { params: SlugParams, response: { 200: SingleArticleResponse } },
      handler: async (request) => ({
        article: await articles.favorite(
          requireIdentity(request),
          (request.params as { slug: string }).slug,
          on,
        ),
      }),
    });
  }
};

export default articleRoutes;
