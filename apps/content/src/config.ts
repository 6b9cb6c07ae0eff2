import { Env, parseEnv, type ServiceConfig, serviceConfig, serviceEnv, Type } from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3002),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_CACHE_URL: Env.redisUrl('cache'),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
});

export interface ContentConfig extends ServiceConfig {
  databaseUrl: string;
  redis: { cache: string; queue: string };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): ContentConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    databaseUrl: e.DATABASE_URL,
    redis: { cache: e.REDIS_CACHE_URL, queue: e.REDIS_QUEUE_URL },
  };
}
