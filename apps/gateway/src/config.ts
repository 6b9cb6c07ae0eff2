import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import {
  ConfigError,
  Env,
  identityPrivateKey,
  identitySigningEnv,
  parseEnv,
  type ServiceConfig,
  serviceConfig,
  serviceEnv,
  sessionConfig,
  sessionEnv,
  Type,
} from '@atoll/config';
import type { Upstream } from './routes/table.ts';

const ORIGIN_LIST = '^(https?://[^\\s,/]+)?(,https?://[^\\s,/]+)*$';

/** An upstream service's instances: one base URL, or several separated by commas. */
function upstreamEnv(what: string, example: string) {
  return Type.String({
    pattern: '^https?://[^\\s,]+(,https?://[^\\s,]+)*$',
    description: `the ${what}'s base URL, e.g. ${example}, or its instances' URLs separated by commas (each request goes to the next in turn; one that refuses connections is skipped for a moment, and a request it could not have received goes to another)`,
  });
}

/** A rate-limit tier's two variables: how many requests per window, and the window. */
function tierEnv(name: string, max: number, windowS: number, who: string) {
  return {
    [`RATE_LIMIT_${name}_MAX`]: Type.Integer({
      minimum: 1,
      default: max,
      description: `how many requests ${who} may send per window`,
    }),
    [`RATE_LIMIT_${name}_WINDOW_S`]: Env.seconds(windowS, `the window of the ${name.toLowerCase()} limit`),
  } as const;
}

export const EnvSchema = Type.Object({
  ...serviceEnv(3000),
  ...identitySigningEnv(),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  REDIS_COMMAND_TIMEOUT_MS: Env.milliseconds(
    500,
    'how long a redis-session command (session lookup, rate-limit count) may take before the gateway gives up on it',
  ),
  AUTH_URL: upstreamEnv('auth service', 'http://127.0.0.1:3001'),
  CONTENT_URL: upstreamEnv('content service', 'http://127.0.0.1:3002'),
  NOTIFIER_URL: upstreamEnv('notifier service', 'http://127.0.0.1:3003'),
  UPSTREAM_TIMEOUT_MS: Env.milliseconds(10_000, 'how long an upstream may take to answer before a 504'),
  UPSTREAM_ROUTE_TIMEOUTS: Type.String({
    default: '',
    pattern: '^(/[^\\s,=]*=[0-9]+)?(,/[^\\s,=]*=[0-9]+)*$',
    description:
      'per-prefix upstream timeouts overriding UPSTREAM_TIMEOUT_MS, e.g. /api/users/login=3000,/api/articles=5000 (milliseconds; the longest matching prefix wins)',
  }),
  SSE_HEARTBEAT_MS: Env.milliseconds(
    15_000,
    'how often an idle live stream gets a heartbeat comment (and checks that its session still exists)',
  ),
  SSE_MAX_STREAMS_PER_USER: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      "how many live notification streams one user may hold on one gateway instance; a new one beyond it ends the user's oldest",
  }),
  SSE_MAX_STREAMS_PER_ADDRESS: Type.Integer({
    minimum: 1,
    default: 20,
    description:
      'how many live notification streams one client address (IPv6: one /64) may hold on one gateway instance, whatever the accounts; beyond it 429',
  }),
  SSE_MAX_STREAMS: Type.Integer({
    minimum: 1,
    default: 10_000,
    description: 'how many live notification streams one gateway instance holds in all; beyond it 503',
  }),
  SSE_MAX_LIFETIME_S: Env.seconds(
    1800,
    'how long a live stream lasts before the gateway ends it with a retry hint (the client reconnects with Last-Event-ID and misses nothing)',
  ),
  ...sessionEnv(),
  CORS_ORIGINS: Type.String({
    default: '',
    pattern: ORIGIN_LIST,
    description:
      "comma-separated origins (e.g. https://app.example.com) whose pages may call the API from a browser (CORS, with credentials) and make cookie-authenticated writes; the gateway's own origin always may",
  }),
  TRUSTED_PROXIES: Type.String({
    default: '',
    pattern: '^[0-9A-Fa-f:./,]*$',
    description:
      'comma-separated addresses or CIDRs (e.g. 10.0.0.0/8,::1) of proxies whose X-Forwarded-For is believed; empty: the peer address is the client',
  }),
  BODY_LIMIT_BYTES: Type.Integer({
    minimum: 1024,
    default: 256 * 1024,
    description: 'the largest request body the gateway accepts (413 above it), in bytes',
  }),
  ...tierEnv('ANONYMOUS', 600, 60, 'one client address (IPv6: one /64) without a session'),
  ...tierEnv('USER', 1200, 60, 'one signed-in user'),
  ...tierEnv(
    'ADDRESS',
    3000,
    60,
    'one client address (IPv6: one /64), with or without sessions, altogether (a ceiling over the anonymous and user limits)',
  ),
  ...tierEnv(
    'AUTH',
    300,
    60,
    'one client address to sign up, log in, start Google sign-in or check a code or reset token (failed attempts are limited by auth, LOGIN_*)',
  ),
  ...tierEnv('MAIL', 10, 600, 'one client address to ask for a verification code or a password reset email'),
  RATE_LIMIT_ON_STORE_ERROR: Type.Union([Type.Literal('open'), Type.Literal('closed')], {
    default: 'open',
    description:
      'when redis-session cannot count: open (count in memory, per gateway process) or closed (answer 503)',
  }),
});

export type Tier = 'anonymous' | 'user' | 'address' | 'auth' | 'mail';

export interface TierLimit {
  max: number;
  windowMs: number;
}

export interface GatewayConfig extends ServiceConfig {
  /** The Ed25519 key identity assertions are signed with. */
  identityKey: KeyObject;
  redisSessionUrl: string;
  redisCommandTimeoutMs: number;
  /** Each service's instances: base URLs (scheme, host and port), one or more. */
  upstreams: Record<Upstream, string[]>;
  upstreamTimeoutMs: number;
  /** Per-prefix timeouts, longest prefix first. */
  upstreamRouteTimeouts: Array<{ prefix: string; timeoutMs: number }>;
  sseHeartbeatMs: number;
  sseMaxStreamsPerUser: number;
  sseMaxStreamsPerAddress: number;
  sseMaxStreams: number;
  sseMaxLifetimeMs: number;
  session: ReturnType<typeof sessionConfig>;
  corsOrigins: string[];
  trustedProxies: string[];
  bodyLimitBytes: number;
  rateLimits: Record<Tier, TierLimit> & { onStoreError: 'open' | 'closed' };
}

const list = (value: string) => (value ? value.split(',') : []);

function parseProxies(value: string): string[] {
  const proxies = list(value);
  for (const entry of proxies) {
    const [address, bits] = entry.split('/');
    const family = isIP(address ?? '');
    const maxBits = family === 4 ? 32 : 128;
    if (!family || (bits !== undefined && !(Number(bits) >= 0 && Number(bits) <= maxBits))) {
      throw new ConfigError([`TRUSTED_PROXIES has ${JSON.stringify(entry)}, not an address or CIDR`]);
    }
  }
  return proxies;
}

/**
 * An upstream variable's instances, each an origin (a path would be dropped by the proxy) and none twice:
 * every problem in one error.
 */
function parseUpstreams(
  env: Record<'AUTH_URL' | 'CONTENT_URL' | 'NOTIFIER_URL', string>,
): Record<Upstream, string[]> {
  const problems: string[] = [];
  const parse = (name: keyof typeof env): string[] => {
    const urls = env[name].split(',').map((entry) => {
      let url: URL;
      try {
        url = new URL(entry);
      } catch {
        problems.push(`${name} has ${JSON.stringify(entry)}, not a URL`);
        return entry;
      }
      if (url.pathname !== '/' || url.search || url.hash || url.username || url.password)
        problems.push(
          `${name} has ${JSON.stringify(entry)}: give scheme, host and port only (e.g. ${url.origin})`,
        );
      return url.origin;
    });
    const repeated = urls.filter((u, i) => urls.indexOf(u) !== i);
    if (repeated.length > 0) problems.push(`${name} lists ${repeated[0]} more than once`);
    return urls;
  };
  const upstreams = {
    auth: parse('AUTH_URL'),
    content: parse('CONTENT_URL'),
    notifier: parse('NOTIFIER_URL'),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return upstreams;
}

/**
 * A connection that carries no byte for CONNECTION_TIMEOUT_MS is closed: it must outlast the longest wait
 * for an upstream (a 504 must be sent, not a dropped connection) and a live stream's silence between
 * heartbeats.
 */
function checkConnectionTimeout(
  e: {
    CONNECTION_TIMEOUT_MS: number;
    UPSTREAM_TIMEOUT_MS: number;
    SSE_HEARTBEAT_MS: number;
  },
  routeTimeouts: Array<{ prefix: string; timeoutMs: number }>,
): void {
  const problems: string[] = [];
  const longest = Math.max(e.UPSTREAM_TIMEOUT_MS, ...routeTimeouts.map((r) => r.timeoutMs));
  if (e.CONNECTION_TIMEOUT_MS <= longest)
    problems.push(
      `CONNECTION_TIMEOUT_MS (${e.CONNECTION_TIMEOUT_MS}) must be above the longest upstream timeout (${longest}, UPSTREAM_TIMEOUT_MS or UPSTREAM_ROUTE_TIMEOUTS), or a slow upstream's 504 is never sent`,
    );
  if (e.CONNECTION_TIMEOUT_MS <= e.SSE_HEARTBEAT_MS)
    problems.push(
      `CONNECTION_TIMEOUT_MS (${e.CONNECTION_TIMEOUT_MS}) must be above SSE_HEARTBEAT_MS (${e.SSE_HEARTBEAT_MS}), or idle live streams are closed between heartbeats`,
    );
  if (problems.length > 0) throw new ConfigError(problems);
}

export function loadConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const e = parseEnv(EnvSchema, env);
  const tier = (name: string): TierLimit => ({
    max: e[`RATE_LIMIT_${name}_MAX` as keyof typeof e] as number,
    windowMs: (e[`RATE_LIMIT_${name}_WINDOW_S` as keyof typeof e] as number) * 1000,
  });
  const upstreamRouteTimeouts = list(e.UPSTREAM_ROUTE_TIMEOUTS)
    .map((entry) => {
      const [prefix = '', ms = ''] = entry.split('=');
      return { prefix: prefix.replace(/\/$/, ''), timeoutMs: Number(ms) };
    })
    .sort((a, b) => b.prefix.length - a.prefix.length);
  checkConnectionTimeout(e, upstreamRouteTimeouts);
  return {
    ...serviceConfig(e),
    identityKey: identityPrivateKey(e),
    redisSessionUrl: e.REDIS_SESSION_URL,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    upstreams: parseUpstreams(e),
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    upstreamRouteTimeouts,
    sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    sseMaxStreamsPerUser: e.SSE_MAX_STREAMS_PER_USER,
    sseMaxStreamsPerAddress: e.SSE_MAX_STREAMS_PER_ADDRESS,
    sseMaxStreams: e.SSE_MAX_STREAMS,
    sseMaxLifetimeMs: e.SSE_MAX_LIFETIME_S * 1000,
    session: sessionConfig(e),
    corsOrigins: list(e.CORS_ORIGINS),
    trustedProxies: parseProxies(e.TRUSTED_PROXIES),
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    rateLimits: {
      anonymous: tier('ANONYMOUS'),
      user: tier('USER'),
      address: tier('ADDRESS'),
      auth: tier('AUTH'),
      mail: tier('MAIL'),
      onStoreError: e.RATE_LIMIT_ON_STORE_ERROR,
    },
  };
}
