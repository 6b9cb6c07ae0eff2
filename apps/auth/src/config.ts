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
  ...serviceEnv(3001),
  ...sessionEnv(),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
  SESSION_COOKIE_SECURE: Env.boolean(
    true,
    'send the session cookie over HTTPS only (false only for local HTTP)',
  ),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: Type.Integer({
    minimum: 1,
    default: 5,
    description: 'failed logins per account in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_ADDRESS: Type.Integer({
    minimum: 1,
    default: 20,
    description: 'failed logins per client address in one window before 429',
  }),
  LOGIN_FAILURE_WINDOW_S: Env.seconds(900, 'the window failed logins are counted in'),
});

export interface AuthConfig extends ServiceConfig {
  databaseUrl: string;
  redis: { session: string; queue: string };
  session: ReturnType<typeof sessionConfig> & { cookieSecure: boolean };
  login: { perAccount: number; perAddress: number; windowMs: number };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    databaseUrl: e.DATABASE_URL,
    redis: { session: e.REDIS_SESSION_URL, queue: e.REDIS_QUEUE_URL },
    session: { ...sessionConfig(e), cookieSecure: e.SESSION_COOKIE_SECURE },
    login: {
      perAccount: e.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      perAddress: e.LOGIN_MAX_FAILURES_PER_ADDRESS,
      windowMs: e.LOGIN_FAILURE_WINDOW_S * 1000,
    },
  };
}
