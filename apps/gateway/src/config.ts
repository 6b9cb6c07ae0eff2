import {
  Env,
  parseEnv,
  type ServiceConfig,
  serviceConfig,
  serviceEnv,
  sessionConfig,
  sessionEnv,
  Type,
} from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3000),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  AUTH_URL: Env.httpUrl('auth service'),
  CONTENT_URL: Env.httpUrl('content service'),
  NOTIFIER_URL: Env.httpUrl('notifier service'),
  UPSTREAM_TIMEOUT_MS: Env.milliseconds(10_000, 'how long an upstream may take to answer before a 504'),
  SSE_HEARTBEAT_MS: Env.milliseconds(15_000, 'how often an idle live stream gets a heartbeat comment'),
  ...sessionEnv(),
  TRUSTED_ORIGINS: Type.String({
    default: '',
    pattern: '^(https?://[^\\s,/]+)?(,https?://[^\\s,/]+)*$',
    description:
      "comma-separated origins (e.g. https://app.example.com) whose pages may send cookie-authenticated writes; the gateway's own origin always may",
  }),
});

export interface GatewayConfig extends ServiceConfig {
  redisSessionUrl: string;
  upstreams: { auth: string; content: string; notifier: string };
  upstreamTimeoutMs: number;
  sseHeartbeatMs: number;
  session: ReturnType<typeof sessionConfig>;
  trustedOrigins: string[];
}

export function loadConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    redisSessionUrl: e.REDIS_SESSION_URL,
    upstreams: { auth: e.AUTH_URL, content: e.CONTENT_URL, notifier: e.NOTIFIER_URL },
    upstreamTimeoutMs: e.UPSTREAM_TIMEOUT_MS,
    sseHeartbeatMs: e.SSE_HEARTBEAT_MS,
    session: sessionConfig(e),
    trustedOrigins: e.TRUSTED_ORIGINS ? e.TRUSTED_ORIGINS.split(',') : [],
  };
}
