/**
 * Each service describes its own routes: `@fastify/swagger` turns the routes' TypeBox schemas into an
 * OpenAPI 3.1 document, served on the service's internal port at `GET /internal/openapi.json`. The
 * gateway never proxies `/internal`, so this is not public; the gateway merges the services' documents
 * into the public `GET /api/openapi.json` (apps/gateway/src/docs).
 */
import swagger from '@fastify/swagger';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';

export const INTERNAL_OPENAPI_PATH = '/internal/openapi.json';

const openApiPlugin: FastifyPluginAsync<{ service: string; serve: boolean }> = async (app, opts) => {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: `atoll ${opts.service}`, version: '1.0.0' },
      components: {
        securitySchemes: {
          Token: {
            type: 'apiKey',
            in: 'header',
            name: 'Authorization',
            description: 'The session token as `Token <token>` (RealWorld); browsers send the cookie',
          },
        },
      },
    },
  });
  if (!opts.serve) return;
  app.get(INTERNAL_OPENAPI_PATH, { schema: { hide: true }, logLevel: 'warn' }, async () => app.swagger());
};

export const openApi = fp(openApiPlugin, { name: '@atoll/openapi', fastify: '5.x' });
