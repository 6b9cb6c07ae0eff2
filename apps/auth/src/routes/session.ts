import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsync } from 'fastify';

/** `GET /api/auth/session`: the session the request is made with, as the gateway asserted it. */
const sessionRoutes: FastifyPluginAsync = async (app) => {
  app.get('/api/auth/session', async (request) => {
    const identity = requireIdentity(request);
    return {
      session: {
        id: identity.sessionId,
        userId: identity.userId,
        username: identity.username,
        roles: identity.roles,
      },
    };
  });
};

export default sessionRoutes;
