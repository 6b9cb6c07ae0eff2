/**
 * Account administration, for sessions with the `admin` role (403 otherwise):
 * - `DELETE /api/admin/users/:username/sessions`  end every session of the account (200, how many)
 * - `POST   /api/admin/users/:username/disable`   disable it: its sessions end, sign-in is refused (200)
 * - `POST   /api/admin/users/:username/enable`    enable it again (200)
 */
import { type Identity, requireIdentity } from '@atoll/identity';
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { UserRow } from '../users/user.repository.ts';
import { LIMITS } from '../users/user.schemas.ts';
import type { AdminService } from './admin.service.ts';

export interface AdminRoutesOptions {
  admin: AdminService;
}

const Params = Type.Object({ username: Type.String({ minLength: 1, maxLength: LIMITS.username }) });

const AccountResponse = Type.Object({
  user: Type.Object({ username: Type.String(), disabledAt: Type.Union([Type.String(), Type.Null()]) }),
});

const EndedResponse = Type.Object({ sessions: Type.Object({ ended: Type.Integer() }) });

function requireAdmin(request: FastifyRequest): Identity {
  const identity = requireIdentity(request);
  if (!identity.roles.includes('admin')) throw new AppError('FORBIDDEN');
  return identity;
}

const toAccount = (user: UserRow) => ({
  user: { username: user.username, disabledAt: user.disabled_at?.toISOString() ?? null },
});

const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, { admin }) => {
  app.delete(
    '/api/admin/users/:username/sessions',
    { schema: { params: Params, response: { 200: EndedResponse } } },
    async (request) => {
      requireAdmin(request);
      return { sessions: { ended: await admin.endSessions(request.params.username) } };
    },
  );

  app.post(
    '/api/admin/users/:username/disable',
    { schema: { params: Params, response: { 200: AccountResponse } } },
    async (request) => {
      const identity = requireAdmin(request);
      return toAccount(await admin.disable(identity.userId, request.params.username));
    },
  );

  app.post(
    '/api/admin/users/:username/enable',
    { schema: { params: Params, response: { 200: AccountResponse } } },
    async (request) => {
      requireAdmin(request);
      return toAccount(await admin.enable(request.params.username));
    },
  );
};

export default adminRoutes;
