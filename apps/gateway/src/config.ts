import { Env, parseEnv, type ServiceConfig, serviceConfig, serviceEnv, Type } from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3000),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  AUTH_URL: Env.httpUrl('auth service'),
  CONTENT_URL: Env.httpUrl('content service'),
  NOTIFIER_URL: Env.httpUrl('notifier service'),
  UPSTREAM_TIMEOUT_MS: Env.milliseconds(10_000, 'how long an upstream may take to answer before a 504'),
  SESSION_COOKIE_NAME: Type.String({
    pattern: '^[A-Za-z0-9_-]+$',
    default: '__Host-atoll_session',
    description: 'the name of the browser session cookie',
  }),
  SESSION_IDLE_TIMEOUT_S: Env.seconds(7 * 24 * 3600, 'how long an unused session lives'),
  SESSION_ABSOLUTE_TIMEOUT_S: Env.seconds(30 * 24 * 3600, 'the longest any session lives'),
  SESSION_REFRESH_INTERVAL_S: Env.seconds(300, 'the least time between two idle-timeout refreshes'),
});

export interface GatewayConfig extends ServiceConfig {
  redisSessionUrl: string;
  upstreams: { auth: string; content: string; notifier: string };
  upstreamTimeoutMs: number;
  sessionCookieName: string;
  session: { idleMs: number; absoluteMs: number; refreshMs: number };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    redisSessionUrl: e.REDIS_SESSION_URL,
    upstreams: { auth: e.AUTH_URL, content: e.CONTENT_URL, notifier: e.NOTIFIER_URL },
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    sessionCookieName: e.SESSION_COOKIE_NAME,
    session: {
      idleMs: e.SESSION_IDLE_TIMEOUT_S * 1000,
      absoluteMs: e.SESSION_ABSOLUTE_TIMEOUT_S * 1000,
      refreshMs: e.SESSION_REFRESH_INTERVAL_S * 1000,
    },
  };
}
