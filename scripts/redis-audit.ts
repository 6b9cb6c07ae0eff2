/**
 * `pnpm redis:audit`: the key-space audit (@atoll/redis audit.ts) of each Redis role, as a table (or
 * `--json`). Exits 0 when nothing is wrong, 1 on any violation, 2 when it cannot run (bad arguments, a
 * server away, a missing permission).
 *
 * Which servers: REDIS_CACHE_URL, REDIS_SESSION_URL and REDIS_QUEUE_URL (any subset), each with the
 * `audit` user's credentials (or the admin's), and REDIS_KEY_PREFIX (default `atoll`). With none of the
 * URLs set, the running local stack (`npm start`): its addresses from ATOLL_DATA_DIR/stack.json and the
 * `audit` user's passwords from ATOLL_DATA_DIR/credentials.json (ATOLL_DATA_DIR defaults to .atoll/data).
 *
 * Options: --json, --max-keys <n> (per instance, default 100000), --large-value-bytes <n> (default
 * 524288), --samples <n> (MEMORY USAGE SAMPLES, default 5).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { retentionBounds } from '@atoll/jobs';
import {
  AUDIT_DEFAULTS,
  type AuditReport,
  auditKeySpace,
  closeRedis,
  connectRedis,
  formatAuditReport,
  type RoleCheckedRedis,
  violationTotal,
} from '@atoll/redis';
import { createKeys, type RedisRole } from '@atoll/redis-keys';

const ROLES = ['cache', 'session', 'queue'] as const;
const URL_VARIABLES: Record<RedisRole, string> = {
  cache: 'REDIS_CACHE_URL',
  session: 'REDIS_SESSION_URL',
  queue: 'REDIS_QUEUE_URL',
};

export interface AuditTarget {
  prefix: string;
  urls: Partial<Record<RedisRole, string>>;
}

/** The servers to audit: the URL variables if any is set, else the local stack in `dataDir`. */
export function auditTarget(env: Record<string, string | undefined>, dataDir: string): AuditTarget {
  const urls: Partial<Record<RedisRole, string>> = {};
  for (const role of ROLES) {
    const url = env[URL_VARIABLES[role]];
    if (url) urls[role] = url;
  }
  if (Object.keys(urls).length > 0) return { prefix: env.REDIS_KEY_PREFIX || 'atoll', urls };

  const stackFile = join(dataDir, 'stack.json');
  const credentialsFile = join(dataDir, 'credentials.json');
  if (!existsSync(stackFile) || !existsSync(credentialsFile)) {
    throw new Error(
      `no Redis to audit: set ${Object.values(URL_VARIABLES).join(', ')} (the audit user's URLs), or run it beside a running \`npm start\` (no ${stackFile})`,
    );
  }
  const stack = JSON.parse(readFileSync(stackFile, 'utf8')) as {
    keyPrefix: string;
    redis: Record<RedisRole, string>;
  };
  const credentials = JSON.parse(readFileSync(credentialsFile, 'utf8')) as {
    redis?: Partial<Record<RedisRole, { audit?: string }>>;
  };
  for (const role of ROLES) {
    const password = credentials.redis?.[role]?.audit;
    if (!password)
      throw new Error(`${credentialsFile} has no audit password for redis-${role}: restart npm start`);
    const url = new URL(stack.redis[role]);
    url.username = 'audit';
    url.password = password;
    urls[role] = url.toString();
  }
  return { prefix: env.REDIS_KEY_PREFIX || stack.keyPrefix, urls };
}

export interface AuditRunOptions {
  maxKeys?: number;
  largeValueBytes?: number;
  memorySamples?: number;
}

/** Connects to each target (checking its role), audits, and closes. */
export async function runAudit(target: AuditTarget, opts: AuditRunOptions = {}): Promise<AuditReport> {
  const log = { info() {}, warn() {}, error() {} };
  const clients: Partial<Record<RedisRole, RoleCheckedRedis>> = {};
  try {
    for (const role of ROLES) {
      const url = target.urls[role];
      if (!url) continue;
      clients[role] = await connectRedis({
        url,
        role,
        use: 'producer',
        name: `audit:${role}`,
        log,
        commandTimeoutMs: 10_000,
      });
    }
    return await auditKeySpace({
      prefix: target.prefix,
      clients,
      lengthBounds: retentionBounds(createKeys(target.prefix)),
      ...opts,
    });
  } finally {
    await Promise.all(Object.values(clients).map(closeRedis));
  }
}

function count(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, got ${value}`);
  return n;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      'max-keys': { type: 'string' },
      'large-value-bytes': { type: 'string' },
      samples: { type: 'string' },
    },
  });
  const dataDir = resolve(process.env.ATOLL_DATA_DIR || join(import.meta.dirname, '..', '.atoll', 'data'));
  const target = auditTarget(process.env, dataDir);
  const report = await runAudit(target, {
    maxKeys: count(values['max-keys'], 'max-keys') ?? AUDIT_DEFAULTS.maxKeys,
    largeValueBytes:
      count(values['large-value-bytes'], 'large-value-bytes') ?? AUDIT_DEFAULTS.largeValueBytes,
    memorySamples: count(values.samples, 'samples') ?? AUDIT_DEFAULTS.memorySamples,
  });
  console.log(values.json ? JSON.stringify(report, null, 2) : formatAuditReport(report));
  return violationTotal(report) > 0 ? 1 : 0;
}

if (import.meta.main) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: Error) => {
      console.error(`redis:audit: ${err.message}`);
      process.exitCode = 2;
    },
  );
}
