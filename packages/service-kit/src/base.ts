import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { type ErrorHandlingOptions, installErrorHandling } from './errors.ts';
import { REQUEST_ID_HEADER } from './fastify-options.ts';
import health from './health.ts';
import { installValidation } from './validation.ts';

/**
 * What every service registers first: validation (strict bodies), the error handler and 404 in the
 * RealWorld shape, the health
 * routes, the request id echoed on every response (so a client can quote it in a bug report), and
 * connections that end with their last response once shutdown has begun.
 */
const basePlugin: FastifyPluginAsync<ErrorHandlingOptions> = async (app, opts) => {
  installValidation(app);
  installErrorHandling(app, opts);
  await app.register(health);
  // Hooks on every request are written with callbacks rather than async functions: no promise per call.
  app.addHook('onRequest', (request, reply, done) => {
    reply.header(REQUEST_ID_HEADER, request.id);
    done();
  });
  // Graceful shutdown: a request still in flight when closing starts gets `Connection: close`, so its
  // keep-alive connection ends with the response instead of holding the server open until it times out.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
};

export default fp(basePlugin, { name: '@atoll/base', fastify: '5.x' });
