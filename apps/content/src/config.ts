import type { KeyObject } from 'node:crypto';
import {
  Env,
  identityPublicKeys,
  identityVerifyingEnv,
  parseEnv,
  type ServiceConfig,
  serviceConfig,
  serviceEnv,
  Type,
} from '@atoll/config';

export const EnvSchema = Type.Object({
  ...serviceEnv(3002),
  ...identityVerifyingEnv(),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_CACHE_URL: Env.redisUrl('cache'),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
  AUTH_URL: Env.httpUrl('auth service (asked for a profile whose user event has not arrived yet)'),
  AUTH_INTERNAL_TOKEN: Type.Optional(
    Env.secret(
      "the bearer token sent to auth's GET /internal/profiles/:username (the same value as auth's INTERNAL_TOKEN; unset: auth is not asked, and a name not yet projected answers 503)",
    ),
  ),
  CACHE_ENABLED: Env.boolean(
    true,
    'cache article, list, profile and tag reads and the relation keys (turn off only to measure or debug)',
  ),
  CACHE_TTL_S: Env.seconds(60, 'how long a cached read stays fresh'),
  CACHE_GRACE_S: Env.seconds(300, 'how long after that a cached read may be served while PostgreSQL is down'),
  RANKINGS_RECOMPUTE_S: Env.seconds(
    300,
    'how often trending and the leaderboard are rebuilt from PostgreSQL',
  ),
  CACHE_L1_MAX_ENTRIES: Type.Integer({
    minimum: 1,
    default: 5000,
    description: 'entries kept in each process (L1)',
  }),
});

export interface ContentConfig extends ServiceConfig {
  /** The gateway’s public key(s): identity assertions are checked with them. */
  identityPublicKeys: KeyObject[];
  databaseUrl: string;
  authUrl: string;
  /** Sent to auth's `GET /internal/profiles/:username`; null: auth is not asked. */
  authInternalToken: string | null;
  rankingsRecomputeMs: number;
  redis: { cache: string; queue: string };
  cache: { enabled: boolean; ttlMs: number; graceMs: number; l1MaxEntries: number };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): ContentConfig {
  const e = parseEnv(EnvSchema, env);
  return {
    ...serviceConfig(e),
    identityPublicKeys: identityPublicKeys(e),
    databaseUrl: e.DATABASE_URL,
    authUrl: e.AUTH_URL.replace(/\/+$/, ''),
    authInternalToken: e.AUTH_INTERNAL_TOKEN ?? null,
    rankingsRecomputeMs: e.RANKINGS_RECOMPUTE_S * 1000,
    redis: { cache: e.REDIS_CACHE_URL, queue: e.REDIS_QUEUE_URL },
    cache: {
      enabled: e.CACHE_ENABLED,
      ttlMs: e.CACHE_TTL_S * 1000,
      graceMs: e.CACHE_GRACE_S * 1000,
      l1MaxEntries: e.CACHE_L1_MAX_ENTRIES,
    },
  };
}
