/**
 * The gateway's rate limits (@fastify/rate-limit, counted by RateCounter on redis-session), checked on
 * every request — unknown routes too, so a 404 flood is limited like anything else:
 * - `anonymous`: per client address (an IPv6 address counts as its /64), for requests without a session;
 * - `user`: per user, for requests with a live session (counted in the session lookup's round trip);
 * - `auth`: per client address, on top of the above for the endpoints that create sessions or check a
 *   secret (sign-up, login, code and reset-token checks, Google sign-in start): a budget that ordinary
 *   use (a classroom behind one NAT, a conformance run) does not exhaust; guessing is stopped by auth's
 *   own limiter, which counts failed attempts per account and address (LOGIN_*);
 * - `mail`: per client address, stricter, on top of the above for the endpoints that send email
 *   (verification code, password reset).
 * The client address is `request.ip`: the peer, or what a trusted proxy (TRUSTED_PROXIES) says.
 *
 * Every limited response carries `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-
 * headers: `"<tier>";q=<max>;w=<window s>` and `"<tier>";r=<remaining>;t=<reset s>`); a refused one is a
 * 429 in the RealWorld shape with `Retry-After`. Health probes and /metrics are not limited.
 */
import { AppError, Counter, type Registry } from '@atoll/service-kit';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Tier, TierLimit } from '../config.ts';
import { pathOf } from '../routes/table.ts';
import type { RateCounter } from './counter.ts';

/** The endpoints with a tier of their own on top of the caller's: method and path (no query string). */
export const ENDPOINT_TIERS: ReadonlyArray<readonly [string, string, Tier]> = [
  ['POST', '/api/users', 'auth'],
  ['POST', '/api/users/login', 'auth'],
  ['POST', '/api/user/verification/confirm', 'auth'],
  ['POST', '/api/users/password-reset/confirm', 'auth'],
  ['GET', '/api/auth/google', 'auth'],
  ['POST', '/api/user/verification', 'mail'],
  ['POST', '/api/users/password-reset', 'mail'],
];

const UNLIMITED = /^\/(health\/|metrics$)/;

/** The address a limit counts: IPv4 as it is, IPv6 grouped by its /64, IPv4-mapped IPv6 as IPv4. */
export function limitAddress(ip: string): string {
  return normalizeIP(ip, 64);
}

function endpointTier(request: FastifyRequest): Tier | undefined {
  const path = pathOf(request.url);
  return ENDPOINT_TIERS.find(([method, p]) => method === request.method && p === path)?.[2];
}

export interface RateLimitOptions {
  counter: RateCounter;
  limits: Record<Tier, TierLimit>;
  registry: Registry;
}

const rateLimits: FastifyPluginAsync<RateLimitOptions> = async (app, opts) => {
  const { counter } = opts;
  // The plugin builds its store with `new`; every tier shares the one counter.
  function SharedStore() {
    return counter;
  }
  await app.register(rateLimit, { global: false, store: SharedStore as never, skipOnError: false });

  const limiterOf = (tier: Tier, keyOf: (request: FastifyRequest) => string) =>
    app.createRateLimit({
      max: opts.limits[tier].max,
      timeWindow: opts.limits[tier].windowMs,
      keyGenerator: keyOf,
    });
  const limiters: Record<Tier, ReturnType<typeof limiterOf>> = {
    anonymous: limiterOf('anonymous', (r) => counter.keyOf('anonymous', limitAddress(r.ip))),
    user: limiterOf('user', (r) =>
      counter.keyOf('user', r.caller.kind === 'user' ? r.caller.identity.userId : ''),
    ),
    auth: limiterOf('auth', (r) => counter.keyOf('auth', limitAddress(r.ip))),
    mail: limiterOf('mail', (r) => counter.keyOf('mail', limitAddress(r.ip))),
  };
  const rejections = new Counter({
    name: 'gateway_rate_limit_rejections_total',
    help: 'Requests refused with 429, by the tier whose limit they exceeded',
    labelNames: ['tier'] as const,
    registers: [opts.registry],
  });

  app.addHook('onRequest', async (request, reply) => {
    if (UNLIMITED.test(request.url)) return;
    const tiers: Tier[] = [request.caller.kind === 'user' ? 'user' : 'anonymous'];
    const extra = endpointTier(request);
    if (extra) tiers.unshift(extra);
    const results = await counter.precounted.run(request.precount, () =>
      Promise.all(tiers.map((tier) => limiters[tier](request))),
    );
    const policy: string[] = [];
    const state: string[] = [];
    let retryAfter = 0;
    let exceeded: Tier | null = null;
    results.forEach((result, i) => {
      const tier = tiers[i] as Tier;
      if (result.isAllowed) return;
      policy.push(`"${tier}";q=${result.max};w=${Math.round(result.timeWindow / 1000)}`);
      state.push(`"${tier}";r=${result.remaining};t=${result.ttlInSeconds}`);
      if (result.isExceeded && (exceeded === null || result.ttlInSeconds > retryAfter)) {
        retryAfter = Math.max(1, result.ttlInSeconds);
        exceeded = tier;
      }
    });
    const headers = { 'ratelimit-policy': policy.join(', '), ratelimit: state.join(', ') };
    if (!exceeded) {
      reply.headers(headers);
      return;
    }
    rejections.inc({ tier: exceeded });
    request.log.info({ tier: exceeded, retryAfter }, 'rate limit exceeded');
    throw new AppError('RATE_LIMITED', undefined, { ...headers, 'retry-after': String(retryAfter) });
  });
};

export default fp(rateLimits, { name: 'gateway-rate-limits', dependencies: ['gateway-session'] });
