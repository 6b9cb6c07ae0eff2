/**
 * Resolves the caller's session once per request, from `Authorization: Token <token>` (RealWorld API
 * clients; `Bearer` is accepted too) or the session cookie (browsers). The result is `request.caller`:
 * - `{ kind: 'user', identity }` for a live session,
 * - `{ kind: 'anonymous' }` without a token or with an unknown/expired one (services answer 401 where a
 *   user is required),
 * - `{ kind: 'unknown' }` when redis-session cannot be asked: services answer 503 where a user is
 *   required and serve public reads anonymously (design.md, failure behaviour).
 *
 * The record is read by the rate limiter's script, which counts the request in the same round trip
 * (rate-limit/counter.ts) and leaves its count in `request.precount`; the checks and the idle refresh
 * (the only write, when due) are @atoll/session-store's.
 */

import type { Identity } from '@atoll/identity';
import type { RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import {
  type LocatedSession,
  SessionStore,
  type SessionTimeouts,
  tokenFromHeaders,
} from '@atoll/session-store';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Precount, RateCounter } from '../rate-limit/counter.ts';

export type Caller = { kind: 'user'; identity: Identity } | { kind: 'anonymous' } | { kind: 'unknown' };

/**
 * Where the session token came from: the `Authorization` header (an API client: the cookie, if any, is
 * ignored), the session cookie (a browser, and the CSRF rules apply), or nowhere.
 */
export type Credential = 'header' | 'cookie' | null;

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
    credential: Credential;
    /** The rate-limit count made while reading the session, if one was. */
    precount: Precount | undefined;
  }
}

export interface SessionPluginOptions {
  keyPrefix: string;
  cookieName: string;
  timeouts: SessionTimeouts;
  counter: RateCounter;
}

const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (app, opts) => {
  const redis = app.redis.session as RoleCheckedRedis;
  const store = new SessionStore(redis, createKeys(opts.keyPrefix), opts.timeouts);
  app.decorateRequest<Caller | null>('caller', null);
  app.decorateRequest<Precount | undefined>('precount', undefined);
  app.decorateRequest<Credential>('credential', null);
  // One object for every anonymous caller (nothing writes into a caller).
  const ANONYMOUS: Caller = Object.freeze({ kind: 'anonymous' });

  /** Reads the record and counts the request in one round trip, then lets the store judge the record. */
  async function resolve(request: FastifyRequest, located: LocatedSession) {
    try {
      const { record, precount } = await opts.counter.readSessionAndCount(
        located,
        request.classification.address,
      );
      request.precount = precount;
      const session = await store.accept(located, record);
      request.caller = session
        ? {
            kind: 'user',
            identity: {
              userId: session.userId,
              username: session.username,
              sessionId: session.id,
              roles: session.roles,
            },
          }
        : ANONYMOUS;
    } catch (err) {
      request.log.warn({ err: { message: (err as Error).message } }, 'session store unavailable');
      request.caller = { kind: 'unknown' };
    }
  }

  // A callback hook: a request without a token (most anonymous reads) costs no promise and no Redis.
  app.addHook('onRequest', (request, _reply, done) => {
    const token = tokenFromHeaders(request.headers, opts.cookieName);
    request.credential = token === null ? null : request.headers.authorization ? 'header' : 'cookie';
    const located = token ? store.locate(token) : null;
    if (!located) {
      request.caller = ANONYMOUS;
      return done();
    }
    resolve(request, located).then(() => done(), done);
  });
};

export default fp(sessionPlugin, {
  name: 'gateway-session',
  dependencies: ['@atoll/redis-roles', 'gateway-door'],
});
