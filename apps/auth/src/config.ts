import { Env, parseEnv, type ServiceConfig, serviceConfig, serviceEnv, Type } from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3001),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
});

export interface AuthConfig extends ServiceConfig {
  databaseUrl: string;
  redis: { session: string; queue: string };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    databaseUrl: e.DATABASE_URL,
    redis: { session: e.REDIS_SESSION_URL, queue: e.REDIS_QUEUE_URL },
  };
}
