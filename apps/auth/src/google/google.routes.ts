/**
 * - `GET /api/auth/google?returnTo=/path`  302 to the provider, with the browser binding cookie set
 * - `GET /api/auth/google/callback`         302 to the return path with a new session cookie, or a 4xx
 *                                            in the RealWorld shape and no session (503 when the
 *                                            provider cannot be reached: start again shortly)
 * - `HEAD` of either                         405: a HEAD must not write a state nor make a session
 */
import { AppError } from '@atoll/service-kit';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { ClientInfo, UserService } from '../users/user.service.ts';
import type { GoogleSignIn } from './google.service.ts';
import { STATE_TTL_MS } from './google.service.ts';
import { allowedReturnTo } from './return-to.ts';

export interface GoogleRoutesOptions {
  google: GoogleSignIn | null;
  users: UserService;
  returnOrigins: readonly string[];
  secureCookies: boolean;
  clientOf: (request: FastifyRequest) => ClientInfo;
  setSessionCookie: (reply: FastifyReply, token: string) => void;
}

const BINDING_COOKIE = 'atoll_oauth_binding';
const FLOW_PATH = '/api/auth/google';

function bindingCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${BINDING_COOKIE}=${value}`,
    `Path=${FLOW_PATH}`,
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Lax',
  ]
    .concat(secure ? ['Secure'] : [])
    .join('; ');
}

function bindingOf(request: FastifyRequest): string | null {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === BINDING_COOKIE) return value.join('=') || null;
  }
  return null;
}

const googleRoutes: FastifyPluginAsyncTypebox<GoogleRoutesOptions> = async (app, opts) => {
  const configured = () => {
    if (!opts.google) throw new AppError('OAUTH_NOT_CONFIGURED');
    return opts.google;
  };

  // HEAD would run the GET handler, which writes a state to Redis for a redirect nobody follows: refused.
  const headRefused = async () => {
    throw new AppError('METHOD_NOT_ALLOWED', undefined, { allow: 'GET' });
  };
  app.head(FLOW_PATH, headRefused);
  app.head(`${FLOW_PATH}/callback`, headRefused);

  app.get(
    FLOW_PATH,
    {
      exposeHeadRoute: false,
      schema: { querystring: Type.Object({ returnTo: Type.Optional(Type.String({ maxLength: 2048 })) }) },
    },
    async (request, reply) => {
      const google = configured();
      const returnTo = allowedReturnTo(request.query.returnTo, opts.returnOrigins);
      if (!returnTo)
        throw new AppError('VALIDATION_FAILED', { returnTo: ['is not an allowed return address'] });
      const { location, binding } = await google.start(returnTo);
      reply.header('set-cookie', bindingCookie(binding, STATE_TTL_MS / 1000, opts.secureCookies));
      reply.header('cache-control', 'no-store');
      return reply.redirect(location, 302);
    },
  );

  app.get(
    `${FLOW_PATH}/callback`,
    {
      exposeHeadRoute: false,
      schema: { querystring: Type.Record(Type.String(), Type.String({ maxLength: 4096 })) },
    },
    async (request, reply) => {
      const google = configured();
      const query = request.query as Record<string, string>;
      // The binding cookie has done its job whatever the outcome.
      reply.header('set-cookie', bindingCookie('', 0, opts.secureCookies));
      const { user, returnTo } = await google.finish(query, bindingOf(request));
      // Judged again before any session exists: a state written before the return address was
      // normalized (allowedReturnTo) might hold one that is not a valid Location; home instead.
      const location = allowedReturnTo(returnTo, opts.returnOrigins) ?? '/';
      // A new session; the one the browser had before signing in does not survive it (fixation).
      const token = await opts.users.startSession(user, opts.clientOf(request));
      opts.setSessionCookie(reply, token);
      reply.header('cache-control', 'no-store');
      return reply.redirect(location, 302);
    },
  );
};

export default googleRoutes;
