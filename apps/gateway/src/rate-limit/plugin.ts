/**
 * The gateway's rate limits (@fastify/rate-limit, counted by RateCounter on redis-session), checked on
 * every request — unknown routes too, so a 404 flood is limited like anything else:
 * - `anonymous`: per client address (an IPv6 address counts as its /64), for requests without a session;
 * - `user`: per user, for requests with a live session (counted in the session lookup's round trip);
 * - `address`: per client address, every request, signed in or not: a ceiling over the two above, so
 *   that many accounts (or many sessions and no session) from one address are still limited. It is
 *   counted in the same round trip as the caller's tier, and shown in the RateLimit headers only when
 *   it is the limit closer to running out;
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
 * 429 in the RealWorld shape with `Retry-After`. `/health/live`, `/health/ready` and /metrics are not
 * limited (probes and the scraper call them often, and they answer without asking anything upstream);
 * `/health/services` asks every service, so it counts like any anonymous request.
 *
 * Every request's tiers are counted in one Redis command: the session lookup's script for an
 * authenticated request (its endpoint tier, if any, in a second one), else one `countAll`.
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

const UNLIMITED = new Set(['/health/live', '/health/ready', '/metrics']);

/** The address a limit counts: IPv4 as it is, IPv6 grouped by its /64, IPv4-mapped IPv6 as IPv4. */
export function limitAddress(ip: string): string {
  return normalizeIP(ip, 64);
}

function endpointTier(request: FastifyRequest): Tier | undefined {
  const path = pathOf(request.url);
  // HEAD runs what GET runs (Fastify answers it with the GET route): it costs what GET costs.
  const method = request.method === 'HEAD' ? 'GET' : request.method;
  return ENDPOINT_TIERS.find(([m, p]) => m === method && p === path)?.[2];
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

  /** The counter a request counts on in a tier: its user's for `user`, else its address's. */
  const keyOf = (tier: Tier, r: FastifyRequest) =>
    tier === 'user'
      ? counter.keyOf('user', r.caller.kind === 'user' ? r.caller.identity.userId : '')
      : counter.keyOf(tier, limitAddress(r.ip));
  const limiterOf = (tier: Tier) =>
    app.createRateLimit({
      max: opts.limits[tier].max,
      timeWindow: opts.limits[tier].windowMs,
      keyGenerator: (r) => keyOf(tier, r),
    });
  const limiters: Record<Tier, ReturnType<typeof limiterOf>> = {
    anonymous: limiterOf('anonymous'),
    user: limiterOf('user'),
    address: limiterOf('address'),
    auth: limiterOf('auth'),
    mail: limiterOf('mail'),
  };
  const rejections = new Counter({
    name: 'gateway_rate_limit_rejections_total',
    help: 'Requests refused with 429, by the tier whose limit they exceeded',
    labelNames: ['tier'] as const,
    registers: [opts.registry],
  });

  app.addHook('onRequest', async (request, reply) => {
    if (UNLIMITED.has(pathOf(request.url))) return;
    const own: Tier = request.caller.kind === 'user' ? 'user' : 'anonymous';
    const tiers: Tier[] = [own, 'address'];
    const extra = endpointTier(request);
    if (extra) tiers.unshift(extra);
    // What the session lookup did not count yet, in one round trip.
    const precount = request.precount ?? new Map();
    const missing = tiers
      .map((tier) => ({
        key: keyOf(tier, request),
        windowMs: opts.limits[tier].windowMs,
        max: opts.limits[tier].max,
      }))
      .filter((c) => !precount.has(c.key));
    if (missing.length > 0)
      for (const [key, count] of await counter.countAll(missing)) precount.set(key, count);
    const results = await counter.precounted.run(precount, () =>
      Promise.all(tiers.map((tier) => limiters[tier](request))),
    );
    const remainingOf = (tier: Tier) => {
      const result = results[tiers.indexOf(tier)];
      return result && !result.isAllowed ? result.remaining : 0;
    };
    const policy: string[] = [];
    const state: string[] = [];
    let retryAfter = 0;
    let exceeded: Tier | null = null;
    results.forEach((result, i) => {
      const tier = tiers[i] as Tier;
      if (result.isAllowed) return;
      // The ceiling is shown when it is the closer limit, or the one exceeded.
      if (tier === 'address' && !result.isExceeded && result.remaining >= remainingOf(own)) return;
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
