/**
 * The gateway's rate limits (a hook of its own, counted by RateCounter on redis-session), checked on
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
 * authenticated request (its endpoint tier, if any, in a second one), else one `countAll`. Which tiers
 * and which address come from the request's classification (classify.ts), made once at the door.
 *
 * Why not @fastify/rate-limit: every count is made before its hook would run (by the session lookup or
 * by one `countAll` for all tiers), so it only turned counts into headers, through a store that looked
 * the counts up again and a promise per tier; the rules below are that part, and nothing more.
 */
import { AppError, Counter, type Registry } from '@atoll/service-kit';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Tier, TierLimit } from '../config.ts';
import type { Precount, RateCounter } from './counter.ts';
import type { Count } from './memory-store.ts';

/** What the counts of one request say: its RateLimit headers, and the tier it exceeded, if any. */
export interface Verdict {
  headers: { 'ratelimit-policy': string; ratelimit: string };
  /** The exceeded tier that frees up last (its wait is `retryAfter`), or null when the request passes. */
  exceeded: Tier | null;
  /** Seconds until `exceeded` lets requests through again (at least 1). */
  retryAfter: number;
}

/**
 * The verdict on one request from its count in each of its tiers (`counts[i]` is `tiers[i]`'s); `own` is
 * the caller's tier (`user` or `anonymous`). Every tier is in the headers except the `address` ceiling,
 * which is shown only when it is exceeded or closer to running out than the caller's own tier.
 */
export function verdict(
  tiers: readonly Tier[],
  counts: readonly Count[],
  limits: Record<Tier, TierLimit>,
  own: Tier,
): Verdict {
  const remaining = (i: number) => Math.max(0, limits[tiers[i] as Tier].max - (counts[i]?.current ?? 0));
  const ownRemaining = remaining(tiers.indexOf(own));
  const policy: string[] = [];
  const state: string[] = [];
  let exceeded: Tier | null = null;
  let retryAfter = 0;
  tiers.forEach((tier, i) => {
    const { max, windowMs } = limits[tier];
    const count = counts[i] ?? { current: 0, ttl: 0 };
    const isExceeded = count.current > max;
    const left = remaining(i);
    if (tier === 'address' && !isExceeded && left >= ownRemaining) return;
    const resetS = Math.ceil(count.ttl / 1000);
    policy.push(`"${tier}";q=${max};w=${Math.round(windowMs / 1000)}`);
    state.push(`"${tier}";r=${left};t=${resetS}`);
    if (isExceeded && (exceeded === null || resetS > retryAfter)) {
      retryAfter = Math.max(1, resetS);
      exceeded = tier;
    }
  });
  return {
    headers: { 'ratelimit-policy': policy.join(', '), ratelimit: state.join(', ') },
    exceeded,
    retryAfter,
  };
}

export interface RateLimitOptions {
  counter: RateCounter;
  limits: Record<Tier, TierLimit>;
  registry: Registry;
}

const rateLimits: FastifyPluginAsync<RateLimitOptions> = async (app, opts) => {
  const { counter, limits } = opts;
  const rejections = new Counter({
    name: 'gateway_rate_limit_rejections_total',
    help: 'Requests refused with 429, by the tier whose limit they exceeded',
    labelNames: ['tier'] as const,
    registers: [opts.registry],
  });

  /** Sets the headers; the error that refuses the request, if it is refused. */
  const apply = (
    request: FastifyRequest,
    reply: FastifyReply,
    tiers: readonly Tier[],
    counts: readonly Count[],
    own: Tier,
  ): AppError | undefined => {
    const { headers, exceeded, retryAfter } = verdict(tiers, counts, limits, own);
    if (!exceeded) {
      reply.headers(headers);
      return undefined;
    }
    rejections.inc({ tier: exceeded });
    request.log.info({ tier: exceeded, retryAfter }, 'rate limit exceeded');
    return new AppError('RATE_LIMITED', undefined, { ...headers, 'retry-after': String(retryAfter) });
  };

  // A callback hook: an authenticated request, counted by the session lookup, costs no promise here.
  app.addHook('onRequest', (request, reply, done) => {
    const { limited, endpointTier, address } = request.classification;
    if (!limited) return done();
    const caller = request.caller;
    const own: Tier = caller.kind === 'user' ? 'user' : 'anonymous';
    const tiers: Tier[] = endpointTier ? [endpointTier, own, 'address'] : [own, 'address'];
    // A user counts on their own counter in `user`, everything else on the client address's.
    const keys = tiers.map((tier) =>
      caller.kind === 'user' && tier === 'user'
        ? counter.keyOf('user', caller.identity.userId)
        : counter.keyOf(tier, address),
    );
    const precount: Precount | undefined = request.precount;
    const missing = keys.flatMap((key, i) =>
      precount?.has(key) ? [] : [{ key, windowMs: limits[tiers[i] as Tier].windowMs }],
    );
    // Each tier's count: made by the session lookup, else just now.
    const countsWith = (counted?: Precount) =>
      keys.map((key) => (precount?.get(key) ?? counted?.get(key)) as Count);
    if (missing.length === 0) return done(apply(request, reply, tiers, countsWith(), own));
    counter
      .countAll(missing)
      .then((counted) => done(apply(request, reply, tiers, countsWith(counted), own)), done);
  });
};

export default fp(rateLimits, {
  name: 'gateway-rate-limits',
  dependencies: ['gateway-door', 'gateway-session'],
});
