/**
 * The Secrets deploy/k8s references, made on this machine and never committed (.atoll/ is ignored):
 *
 *   SMTP_URL=smtp://user:pass@smtp.example.com:587 node --conditions=atoll-source scripts/k8s-secrets.ts
 *
 * writes to .atoll/k8s/ (0700):
 * - credentials.env (0600): the identity key pair, INTERNAL_TOKEN and every password, as
 *   scripts/compose-credentials.ts makes them (kept when run again);
 * - secrets/<name>.json (0600): one Secret per file, so a team applies only its own
 *   (`kubectl -n atoll apply -f .atoll/k8s/secrets/atoll-content.json`): each service's URLs with its own
 *   Redis user and PostgreSQL role, its migration's owner URL, the gateway's private key, the public key
 *   the others share, and each Redis role's ACL file (hashes only, the `audit` user's included); for the
 *   Sentinel component (deploy/k8s/components/redis-sentinel) each service's Sentinel URLs
 *   (REDIS_<ROLE>_SENTINEL_URL), the groups' ACL files and the sentinels' users and passwords;
 * - postgres-roles.sql: each service's two roles and its schema (SCRAM verifiers only), for whoever
 *   administers the database (`psql "$ADMIN_URL" -f postgres-roles.sql`).
 * POSTGRES_ADDRESS (host:port, default postgres:5432) is where the services find PostgreSQL; the database
 * is `atoll`. GOOGLE_CLIENT_SECRET, when set, goes to auth; METRICS_TOKEN, when set, to every service.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  COMPOSE_DATABASE,
  composeCredentials,
  pgPasswordVar,
  readEnvFile,
  redisPasswordVar,
  SENTINEL_ROLES,
} from './compose-credentials.ts';

export const K8S_NAMESPACE = 'atoll';
const REDIS_ROLES = ['cache', 'session', 'queue'] as const;
/** The sentinels of deploy/k8s/components/redis-sentinel, by their pods' names (StatefulSet redis-sentinel). */
export const K8S_SENTINELS = [0, 1, 2].map((i) => `redis-sentinel-${i}.redis-sentinel:26379`);

export interface K8sSecretOptions {
  /** host:port of PostgreSQL as the pods reach it. */
  postgresAddress: string;
  smtpUrl: string;
  googleClientSecret?: string | undefined;
  metricsToken?: string | undefined;
}

export interface SecretObject {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  type: 'Opaque';
  stringData: Record<string, string>;
}

function secret(name: string, stringData: Record<string, string | undefined>): SecretObject {
  const data = Object.fromEntries(
    Object.entries(stringData).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: K8S_NAMESPACE, labels: { 'app.kubernetes.io/part-of': K8S_NAMESPACE } },
    type: 'Opaque',
    stringData: data,
  };
}

/** Every Secret the manifests reference, from the variables credentials.env keeps (made where missing). */
export function k8sSecrets(kept: Record<string, string>, options: K8sSecretOptions) {
  const { env, acl, sql } = composeCredentials(kept);
  const v = (name: string) => env[name] as string;
  type App = 'gateway' | 'auth' | 'content' | 'notifier';
  const redis = (service: App, role: string) =>
    `redis://${service}:${v(redisPasswordVar(service))}@redis-${role}:6379`;
  // The same user, through the sentinels: what the Sentinel component hands the service instead.
  const sentinel = (service: App, role: (typeof SENTINEL_ROLES)[number]) =>
    `redis+sentinel://${service}:${v(redisPasswordVar(service))}@${K8S_SENTINELS.join(',')}/atoll-${role}`;
  const pg = (service: 'auth' | 'content' | 'notifier', owner: boolean) =>
    `postgres://${COMPOSE_DATABASE}_${service}${owner ? '_owner' : ''}:${v(pgPasswordVar(service, owner))}@${options.postgresAddress}/${COMPOSE_DATABASE}`;
  const metrics = options.metricsToken;
  const secrets = [
    secret('atoll-identity-public', { IDENTITY_PUBLIC_KEYS: v('IDENTITY_PUBLIC_KEYS') }),
    secret('atoll-gateway', {
      IDENTITY_PRIVATE_KEY: v('IDENTITY_PRIVATE_KEY'),
      REDIS_SESSION_URL: redis('gateway', 'session'),
      REDIS_SESSION_SENTINEL_URL: sentinel('gateway', 'session'),
      METRICS_TOKEN: metrics,
    }),
    secret('atoll-auth', {
      DATABASE_URL: pg('auth', false),
      REDIS_SESSION_URL: redis('auth', 'session'),
      REDIS_QUEUE_URL: redis('auth', 'queue'),
      REDIS_SESSION_SENTINEL_URL: sentinel('auth', 'session'),
      REDIS_QUEUE_SENTINEL_URL: sentinel('auth', 'queue'),
      INTERNAL_TOKEN: v('INTERNAL_TOKEN'),
      GOOGLE_CLIENT_SECRET: options.googleClientSecret,
      METRICS_TOKEN: metrics,
    }),
    secret('atoll-content', {
      DATABASE_URL: pg('content', false),
      REDIS_CACHE_URL: redis('content', 'cache'),
      REDIS_QUEUE_URL: redis('content', 'queue'),
      REDIS_QUEUE_SENTINEL_URL: sentinel('content', 'queue'),
      AUTH_INTERNAL_TOKEN: v('INTERNAL_TOKEN'),
      METRICS_TOKEN: metrics,
    }),
    secret('atoll-notifier', {
      DATABASE_URL: pg('notifier', false),
      REDIS_QUEUE_URL: redis('notifier', 'queue'),
      REDIS_SESSION_URL: redis('notifier', 'session'),
      REDIS_QUEUE_SENTINEL_URL: sentinel('notifier', 'queue'),
      REDIS_SESSION_SENTINEL_URL: sentinel('notifier', 'session'),
      SMTP_URL: options.smtpUrl,
      METRICS_TOKEN: metrics,
    }),
    ...(['auth', 'content', 'notifier'] as const).map((service) =>
      secret(`atoll-${service}-owner`, { DATABASE_URL: pg(service, true) }),
    ),
    ...REDIS_ROLES.map((role) => secret(`atoll-redis-${role}-acl`, { 'users.acl': acl[role] })),
    // The Sentinel component's: each group's ACL file (with the replica and sentinel users), the
    // replication password every data node has, the sentinels' users and their own password.
    ...SENTINEL_ROLES.map((role) =>
      secret(`atoll-redis-${role}-sentinel-acl`, { 'users.acl': acl[`${role}-sentinel`] }),
    ),
    secret('atoll-redis-replication', { REDIS_REPLICA_PASSWORD: v(redisPasswordVar('replica')) }),
    secret('atoll-redis-sentinel', {
      'users.acl': acl.sentinel,
      REDIS_SENTINEL_PASSWORD: v(redisPasswordVar('sentinel')),
    }),
  ];
  return { env, secrets, sql };
}

if (import.meta.main) {
  const smtpUrl = process.env.SMTP_URL;
  if (!smtpUrl) {
    console.error(
      'k8s-secrets: set SMTP_URL to the mail server the notifier sends through, e.g. SMTP_URL=smtp://user:pass@smtp.example.com:587',
    );
    process.exit(1);
  }
  const dir = resolve(import.meta.dirname, '..', '.atoll', 'k8s');
  const secretsDir = join(dir, 'secrets');
  mkdirSync(secretsDir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  chmodSync(secretsDir, 0o700);
  const envFile = join(dir, 'credentials.env');
  const { env, secrets, sql } = k8sSecrets(readEnvFile(envFile), {
    postgresAddress: process.env.POSTGRES_ADDRESS || 'postgres:5432',
    smtpUrl,
    googleClientSecret: process.env.GOOGLE_CLIENT_SECRET || undefined,
    metricsToken: process.env.METRICS_TOKEN || undefined,
  });
  const write = (file: string, text: string) => {
    writeFileSync(file, text, { mode: 0o600 });
    chmodSync(file, 0o600);
  };
  write(
    envFile,
    `${Object.entries(env)
      .map(([k, value]) => `${k}=${value}`)
      .join('\n')}\n`,
  );
  for (const s of secrets)
    write(join(secretsDir, `${s.metadata.name}.json`), `${JSON.stringify(s, null, 2)}\n`);
  write(join(dir, 'postgres-roles.sql'), sql);
  console.log(`wrote ${dir}: kubectl apply -f .atoll/k8s/secrets/ (or one team's own files)`);
}
