/**
 * - `POST /api/user/verification`             send a verification code to the account's email (202)
 * - `POST /api/user/verification/confirm`     `{ "verification": { "code": "123456" } }` → 200 with the user
 * - `POST /api/users/password-reset`          `{ "user": { "email": … } }` → 202, whatever the email
 * - `POST /api/users/password-reset/confirm`  `{ "reset": { "token": …, "password": … } }` → 204; every
 *                                              session of the account ends, log in again
 */
import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import { LIMITS, UserResponse } from '../users/user.schemas.ts';
import type { VerificationService } from './verification.service.ts';

export interface VerificationRoutesOptions {
  verification: VerificationService;
  /** The token the response may echo: the Authorization header's, never a cookie's ('' then). */
  ownToken: (request: FastifyRequest) => string;
}

const verificationRoutes: FastifyPluginAsyncTypebox<VerificationRoutesOptions> = async (
  app,
  { verification, ownToken },
) => {
  app.post(
    '/api/user/verification',
    {
      schema: { response: { 202: Type.Object({ verification: Type.Object({ expiresAt: Type.String() }) }) } },
    },
    async (request, reply) => {
      const { expiresAt } = await verification.sendCode(requireIdentity(request));
      return reply.code(202).send({ verification: { expiresAt: expiresAt.toISOString() } });
    },
  );

  app.post(
    '/api/user/verification/confirm',
    {
      schema: {
        body: Type.Object({
          verification: Type.Object({
            code: Type.String({ minLength: 1, maxLength: 6, pattern: '^[0-9]+$' }),
          }),
        }),
        response: { 200: UserResponse },
      },
    },
    async (request) => {
      const user = await verification.confirmCode(
        requireIdentity(request),
        request.body.verification.code,
        request.clientIp,
      );
      return {
        user: {
          email: user.email,
          token: ownToken(request),
          username: user.username,
          bio: user.bio,
          image: user.image,
        },
      };
    },
  );

  app.post(
    '/api/users/password-reset',
    {
      schema: {
        body: Type.Object({
          user: Type.Object({ email: Type.String({ minLength: 1, maxLength: LIMITS.email }) }),
        }),
      },
    },
    async (request, reply) => {
      await verification.requestReset(request.body.user.email);
      return reply.code(202).send();
    },
  );

  app.post(
    '/api/users/password-reset/confirm',
    {
      schema: {
        body: Type.Object({
          reset: Type.Object({
            token: Type.String({ minLength: 1, maxLength: 128 }),
            password: Type.String({ minLength: 1, maxLength: LIMITS.password }),
          }),
        }),
      },
    },
    async (request, reply) => {
      await verification.confirmReset(
        request.body.reset.token,
        request.body.reset.password,
        request.clientIp,
      );
      return reply.code(204).send();
    },
  );
};

export default verificationRoutes;
