import { Env, parseEnv, type ServiceConfig, serviceConfig, serviceEnv, Type } from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3003),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
});

export interface NotifierConfig extends ServiceConfig {
  databaseUrl: string;
  redis: { queue: string };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): NotifierConfig {
  const e = parseEnv(EnvSchema, env);
  return { ...serviceConfig(e), databaseUrl: e.DATABASE_URL, redis: { queue: e.REDIS_QUEUE_URL } };
}
