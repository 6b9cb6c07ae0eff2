import { identityPlugin } from '@atoll/identity';
import { Producer } from '@atoll/jobs';
import { createKeys } from '@atoll/redis-keys';
import { base, database, dbOf, fastifyOptions, redisRoles } from '@atoll/service-kit';
import { SessionStore, tokenFromHeaders } from '@atoll/session-store';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import adminRoutes from './admin/admin.routes.ts';
import { AdminService } from './admin/admin.service.ts';
import type { AuthConfig } from './config.ts';
import type { AuthDatabase } from './db.ts';
import googleRoutes from './google/google.routes.ts';
import { GoogleSignIn } from './google/google.service.ts';
import internalProfileRoutes from './internal/profile.routes.ts';
import { SCHEMA } from './migrations/index.ts';
import { userEventRelay } from './outbox/outbox.ts';
import currentSession from './routes/session.ts';
import { DeviceCookies } from './security/device-cookie.ts';
import { LoginLimiter } from './security/login-limiter.ts';
import { PasswordChangeLimiter } from './security/password-change-limiter.ts';
import { RegistrationLimiter } from './security/registration-limiter.ts';
import { clearSessionCookie, setSessionCookie } from './sessions/cookie.ts';
import { reconcileRoles, TRACKED_ROLES } from './sessions/reconcile-roles.ts';
import sessionRoutes from './sessions/session.routes.ts';
import { HashPool } from './users/hash-pool.ts';
import { PasswordHasher } from './users/password.ts';
import { PasswordPolicy } from './users/password-policy.ts';
import userRoutes, { clientOf } from './users/user.routes.ts';
import { UserService } from './users/user.service.ts';
import verificationRoutes from './verification/verification.routes.ts';
import { VerificationService } from './verification/verification.service.ts';

/** The auth service as a plugin tree; `main.ts` serves it, tests inject into it. */
export async function buildApp(config: AuthConfig): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({
      service: 'auth',
      logLevel: config.logLevel,
      requestIds: 'internal',
      timeouts: config.timeouts,
    }),
  ).withTypeProvider<TypeBoxTypeProvider>();
  // Infrastructure
  // Its request paths use Redis for sessions and login counters only: say so when it is down.
  await app.register(base, {
    service: 'auth',
    metricsToken: config.metricsToken,
    redisUnavailable: 'SESSION_STORE_UNAVAILABLE',
  });
  await app.register(redisRoles, { service: 'auth', urls: config.redis });
  await app.register(database, {
    url: config.databaseUrl,
    schema: SCHEMA,
    serverTiming: config.serverTiming,
  });
  await app.register(identityPlugin, { audience: 'auth', publicKeys: config.identityPublicKeys });

  // Domain
  const keys = createKeys(config.keyPrefix);
  const db = dbOf<AuthDatabase>(app);
  const sessions = new SessionStore(app.redis.session!, keys, config.session.timeouts, Date.now, {
    maxPerUser: config.session.maxPerUser,
    trackedRoles: TRACKED_ROLES,
  });
  // Built before the services: auth's jobs (codes, resets, "your email changed") go through it.
  const producer = new Producer(app.redis.queue!, keys);
  const relay = userEventRelay(db, app.redis.queue!, keys, app.log);
  const limiter = new LoginLimiter(app.redis.session!, keys, config.login);
  const devices = new DeviceCookies(app.redis.session!, keys, {
    ...config.deviceCookie,
    secure: config.session.cookieSecure,
  });
  const passwords = new PasswordHasher(config.passwordCost, new HashPool(config.passwordPool));
  const policy = new PasswordPolicy({ denyCommon: config.passwordDenyCommon });
  const verification = new VerificationService({
    db,
    redis: app.redis.session!,
    keys,
    producer,
    sessions,
    limiter,
    passwords,
    policy,
    rolesOf: (user) => users.rolesOf(user),
    relay,
  });
  const users = new UserService({
    db,
    sessions,
    relay,
    limiter,
    changes: new PasswordChangeLimiter(app.redis.session!, keys, config.passwordChanges),
    registrations: new RegistrationLimiter(app.redis.session!, keys, config.registrations),
    devices,
    producer,
    adminEmails: config.adminEmails,
    reauthWindowMs: config.reauthWindowMs,
    passwords,
    policy,
    onEmailChanged: (userId) => verification.dropPendingCode(userId),
  });
  const admin = new AdminService({ db, sessions });
  app.addHook('onClose', async () => producer.close());
  app.addHook('onReady', async () => relay.start());
  // Roles are configuration: sessions that got a role under the previous configuration get today's.
  app.addHook('onReady', async () => {
    const { checked, demoted } = await reconcileRoles({ db, sessions, rolesOf: (u) => users.rolesOf(u) });
    app.log.info({ checked, demoted }, 'session roles reconciled');
  });
  app.addHook('preClose', async () => relay.stop());

  // Routes
  const tokenOf = (request: FastifyRequest) => tokenFromHeaders(request.headers, config.session.cookieName);
  // The token a response body may carry back: only one the client sent in Authorization (it has it
  // already). A cookie's is HttpOnly so that page scripts cannot read it; a body would hand it to them.
  const ownToken = (request: FastifyRequest) =>
    request.headers.authorization ? (tokenOf(request) ?? '') : '';
  const cookie = {
    name: config.session.cookieName,
    secure: config.session.cookieSecure,
    maxAgeSeconds: Math.floor(config.session.timeouts.absoluteMs / 1000),
  };
  await app.register(userRoutes, {
    users,
    tokenOf,
    ownToken,
    setSessionCookie: (reply, token) => setSessionCookie(reply, cookie, token),
    devices,
  });
  await app.register(sessionRoutes, { sessions, clearCookie: (reply) => clearSessionCookie(reply, cookie) });
  await app.register(verificationRoutes, { verification, ownToken });
  const google = config.google
    ? new GoogleSignIn({ settings: config.google, db, redis: app.redis.session!, keys, relay, sessions })
    : null;
  await app.register(googleRoutes, {
    google,
    users,
    returnOrigins: config.returnOrigins,
    secureCookies: config.session.cookieSecure,
    clientOf: (request) => clientOf(request, tokenOf(request)),
    setSessionCookie: (reply, token) => setSessionCookie(reply, cookie, token, false),
  });
  await app.register(adminRoutes, { admin });
  await app.register(currentSession);
  await app.register(internalProfileRoutes, { db, token: config.internalToken });
  return app;
}
