/**
 * Session management for the signed-in user:
 * - `GET    /api/user/sessions`      the live sessions (created, last seen, user agent, which is this one)
 * - `DELETE /api/user/sessions/:id`  revoke one (204; 404 if it is not one of the caller's)
 * - `DELETE /api/user/session`       log out: end this session (204)
 * - `DELETE /api/user/sessions`      log out everywhere: end every session of the user (204)
 * A revoked token is refused at the gateway on its very next request: the record is gone.
 */
import { requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { SessionStore } from '@atoll/session-store';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply } from 'fastify';
import Type from 'typebox';
import { SessionsResponse } from '../users/user.schemas.ts';

export interface SessionRoutesOptions {
  sessions: SessionStore;
  clearCookie: (reply: FastifyReply) => void;
}

const iso = (ms: number) => new Date(ms).toISOString();

const sessionRoutes: FastifyPluginAsyncTypebox<SessionRoutesOptions> = async (
  app,
  { sessions, clearCookie },
) => {
  app.get('/api/user/sessions', { schema: { response: { 200: SessionsResponse } } }, async (request) => {
    const identity = requireIdentity(request);
    const list = await sessions.list(identity.userId);
    return {
      sessions: list.map((s) => ({
        id: s.id,
        createdAt: iso(s.createdAt),
        lastSeenAt: iso(s.lastSeenAt),
        expiresAt: iso(s.expiresAt),
        userAgent: s.userAgent ?? null,
        current: s.id === identity.sessionId,
      })),
    };
  });

  app.delete(
    '/api/user/sessions/:id',
    { schema: { params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{32}$' }) }) } },
    async (request, reply) => {
      const identity = requireIdentity(request);
      const owned = (await sessions.list(identity.userId)).some((s) => s.id === request.params.id);
      if (!owned || !(await sessions.destroyById(identity.userId, request.params.id))) {
        throw new AppError('NOT_FOUND', { session: ['not found'] });
      }
      if (request.params.id === identity.sessionId) clearCookie(reply);
      return reply.code(204).send();
    },
  );

  app.delete('/api/user/session', async (request, reply) => {
    const identity = requireIdentity(request);
    await sessions.destroyById(identity.userId, identity.sessionId);
    clearCookie(reply);
    return reply.code(204).send();
  });

  app.delete('/api/user/sessions', async (request, reply) => {
    const identity = requireIdentity(request);
    await sessions.destroyAll(identity.userId);
    clearCookie(reply);
    return reply.code(204).send();
  });
};

export default sessionRoutes;
