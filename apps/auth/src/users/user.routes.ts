import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { UserRow } from './user.repository.ts';
import { LoginBody, NewUserBody, UpdateUserBody, UserResponse } from './user.schemas.ts';
import type { ClientInfo, UserService } from './user.service.ts';

export interface UserRoutesOptions {
  users: UserService;
  /** Reads the session token the request came with (Authorization header or cookie). */
  tokenOf: (request: FastifyRequest) => string | null;
  /**
   * The token a response may echo: the one sent in `Authorization`, else '' (a cookie's token never goes
   * into a body, where a script on the page could read it; '' keeps the RealWorld shape).
   */
  ownToken: (request: FastifyRequest) => string;
  /** Sets the browser session cookie (API clients ignore it and use the token in the body). */
  setSessionCookie: (reply: FastifyReply, token: string) => void;
}

const toUser = (user: UserRow, token: string) => ({
  user: { email: user.email, token, username: user.username, bio: user.bio, image: user.image },
});

export const clientOf = (request: FastifyRequest, previousToken: string | null = null): ClientInfo => ({
  userAgent: request.headers['user-agent'],
  ip: request.clientIp,
  previousToken,
});

/** The RealWorld user routes: register, login, current user, update. */
const userRoutes: FastifyPluginAsyncTypebox<UserRoutesOptions> = async (
  app,
  { users, tokenOf, ownToken, setSessionCookie },
) => {
  app.post(
    '/api/users',
    { schema: { body: NewUserBody, response: { 201: UserResponse } } },
    async (request, reply) => {
      const { user, token } = await users.register(request.body.user, clientOf(request, tokenOf(request)));
      setSessionCookie(reply, token);
      return reply.code(201).send(toUser(user, token));
    },
  );

  app.post(
    '/api/users/login',
    { schema: { body: LoginBody, response: { 200: UserResponse } } },
    async (request, reply) => {
      const { user, token } = await users.login(request.body.user, clientOf(request, tokenOf(request)));
      setSessionCookie(reply, token);
      return toUser(user, token);
    },
  );

  app.get('/api/user', { schema: { response: { 200: UserResponse } } }, async (request) => {
    const identity = requireIdentity(request);
    return toUser(await users.current(identity), ownToken(request));
  });

  app.put(
    '/api/user',
    { schema: { body: UpdateUserBody, response: { 200: UserResponse } } },
    async (request) => {
      const identity = requireIdentity(request);
      const client = { token: tokenOf(request) ?? '', ip: request.clientIp };
      const { user } = await users.update(identity, client, request.body.user);
      return toUser(user, ownToken(request));
    },
  );
};

export default userRoutes;
