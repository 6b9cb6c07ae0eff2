import { requireIdentity } from '@atoll/identity';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { DeviceCookies } from '../security/device-cookie.ts';
import { fromBrowser } from '../sessions/cookie.ts';
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
  /** Reads and sets the device cookie (security/device-cookie.ts). */
  devices: DeviceCookies;
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
  { users, tokenOf, ownToken, setSessionCookie, devices },
) => {
  /** Who is signing in: the client, the device cookie it brought and whether it is a browser. */
  const signingIn = (request: FastifyRequest): ClientInfo => ({
    ...clientOf(request, tokenOf(request)),
    deviceToken: devices.read(request),
    browser: fromBrowser(request),
  });
  app.post(
    '/api/users',
    { schema: { body: NewUserBody, response: { 201: UserResponse } } },
    async (request, reply) => {
      const { user, token, deviceToken } = await users.register(request.body.user, signingIn(request));
      setSessionCookie(reply, token);
      if (deviceToken) devices.set(reply, deviceToken);
      return reply.code(201).send(toUser(user, token));
    },
  );

  app.post(
    '/api/users/login',
    { schema: { body: LoginBody, response: { 200: UserResponse } } },
    async (request, reply) => {
      const { user, token, deviceToken } = await users.login(request.body.user, signingIn(request));
      setSessionCookie(reply, token);
      if (deviceToken) devices.set(reply, deviceToken);
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
      const client = {
        token: tokenOf(request) ?? '',
        ip: request.clientIp,
        deviceToken: devices.read(request),
      };
      const { user } = await users.update(identity, client, request.body.user);
      return toUser(user, ownToken(request));
    },
  );
};

export default userRoutes;
