import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { installErrorHandling } from './errors.ts';
import { REQUEST_ID_HEADER } from './fastify-options.ts';
import health from './health.ts';

/**
 * What every service registers first: the error handler and 404 in the RealWorld shape, the health
 * routes, and the request id echoed on every response (so a client can quote it in a bug report).
 */
const basePlugin: FastifyPluginAsync = async (app) => {
  installErrorHandling(app);
  await app.register(health);
  app.addHook('onRequest', async (request, reply) => {
    reply.header(REQUEST_ID_HEADER, request.id);
  });
};

export default fp(basePlugin, { name: '@atoll/base', fastify: '5.x' });
