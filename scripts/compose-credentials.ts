/**
 * The credentials of `docker compose`, made on this machine and never committed (.atoll/ is ignored):
 * `node --conditions=atoll-source scripts/compose-credentials.ts` writes to .atoll/compose/
 * - credentials.env (0600): the identity key pair (IDENTITY_PRIVATE_KEY for the gateway,
 *   IDENTITY_PUBLIC_KEYS for the others, as `pnpm identity-keys` prints them), the PostgreSQL
 *   superuser's and every role's password, the Redis admin's, the audit's, a Sentinel group's replica and
 *   sentinel users' and every service user's password, and
 *   INTERNAL_TOKEN (auth's internal route asks content for it: INTERNAL_TOKEN to auth,
 *   AUTH_INTERNAL_TOKEN to content, one value), METRICS_TOKEN;
 * - dev.env (0600): the same plus DEV_SETTINGS (the dev profile and the dev tools' addresses), what
 *   `npm run compose` passes as `docker compose --env-file .atoll/compose/dev.env`;
 * - redis-<role>.acl: each Redis role's ACL users, generated from the key map (@atoll/redis-keys acl.ts;
 *   SHA-256 hashes only, readable by the container's redis user), the key-space audit's `audit` user
 *   included; redis-<role>-sentinel.acl (session, queue): the same plus the `replica` and `sentinel` users
 *   of a Sentinel group, and redis-sentinel.acl: the sentinels' users (deploy/compose/redis-sentinel.yml);
 * - postgres-roles.sql: each service's two roles and its schema (packages/testkit/src/pg-roles.ts), run
 *   by the PostgreSQL image on its first start (SCRAM verifiers only).
 * Run again, it keeps the keys and passwords it made and rewrites the other files from them. To rotate the
 * identity key pair, follow deploy/README.md with the lines `pnpm identity-keys` prints.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type AclUsers, aclFile, SERVICES, sentinelAclFile } from '@atoll/redis-keys';
import { roleNames, SCHEMA_SERVICES, serviceRolesSql } from '@atoll/testkit/servers';

/** The database and key prefix docker-compose.yml uses. */
export const COMPOSE_DATABASE = 'atoll';
export const COMPOSE_KEY_PREFIX = 'atoll';
const ROLES = ['cache', 'session', 'queue'] as const;
/** The roles a deployment may run as Sentinel groups: the ones that must not lose data. */
export const SENTINEL_ROLES = ['session', 'queue'] as const;

/**
 * The Redis users beside the services: the admin (`default`), the key-space audit's, and a Sentinel
 * group's replication and sentinel users (the same on both groups).
 */
const REDIS_OPERATORS = ['admin', 'audit', 'replica', 'sentinel'] as const;

/** The variable that carries one password in credentials.env and docker-compose.yml. */
export const redisPasswordVar = (user: (typeof REDIS_OPERATORS)[number] | (typeof SERVICES)[number]) =>
  `REDIS_${user.toUpperCase()}_PASSWORD`;
export const pgPasswordVar = (service: (typeof SCHEMA_SERVICES)[number], owner: boolean) =>
  `PG_${service.toUpperCase()}${owner ? '_OWNER' : ''}_PASSWORD`;

/** The identity key pair's variables: the gateway's private key, the services' public key(s). */
export const IDENTITY_VARIABLES = ['IDENTITY_PRIVATE_KEY', 'IDENTITY_PUBLIC_KEYS'] as const;

/** A new identity key pair, each key the base64 of its DER on one line. */
function identityKeyPair(): Record<(typeof IDENTITY_VARIABLES)[number], string> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    IDENTITY_PRIVATE_KEY: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
    IDENTITY_PUBLIC_KEYS: publicKey.export({ format: 'der', type: 'spki' }).toString('base64'),
  };
}

/** Every variable credentials.env sets: what docker-compose.yml and deploy/compose/*.yml require. */
export function credentialVariables(): string[] {
  return [
    ...IDENTITY_VARIABLES,
    'INTERNAL_TOKEN',
    'METRICS_TOKEN',
    'POSTGRES_PASSWORD',
    ...REDIS_OPERATORS.map(redisPasswordVar),
    ...SERVICES.map(redisPasswordVar),
    ...SCHEMA_SERVICES.flatMap((s) => [pgPasswordVar(s, false), pgPasswordVar(s, true)]),
  ];
}

/** The three kinds of file, from the variables (made where missing). */
export function composeCredentials(kept: Record<string, string>) {
  // The key pair is kept only whole: half of one is no use.
  const identity = IDENTITY_VARIABLES.every((name) => kept[name])
    ? Object.fromEntries(IDENTITY_VARIABLES.map((name) => [name, kept[name] as string]))
    : identityKeyPair();
  const env: Record<string, string> = { ...identity };
  for (const name of credentialVariables()) env[name] ??= kept[name] || randomBytes(32).toString('hex');
  const password = (user: Parameters<typeof redisPasswordVar>[0]) => env[redisPasswordVar(user)] as string;
  // Every service has one password on every role; aclFile gives a user only to those that use the role.
  const users: AclUsers = { admin: password('admin'), audit: password('audit') };
  for (const service of SERVICES) users[service] = password(service);
  const group = { ...users, replica: password('replica'), sentinel: password('sentinel') };
  const acl = {
    ...(Object.fromEntries(ROLES.map((role) => [role, aclFile(role, COMPOSE_KEY_PREFIX, users)])) as Record<
      (typeof ROLES)[number],
      string
    >),
    ...(Object.fromEntries(
      SENTINEL_ROLES.map((role) => [`${role}-sentinel`, aclFile(role, COMPOSE_KEY_PREFIX, group)]),
    ) as Record<`${(typeof SENTINEL_ROLES)[number]}-sentinel`, string>),
    sentinel: sentinelAclFile([...SENTINEL_ROLES], COMPOSE_KEY_PREFIX, group),
  };
  const pgPasswords: Record<string, string> = {};
  for (const service of SCHEMA_SERVICES) {
    const { role, ownerRole } = roleNames(COMPOSE_DATABASE, service);
    pgPasswords[role] = env[pgPasswordVar(service, false)] as string;
    pgPasswords[ownerRole] = env[pgPasswordVar(service, true)] as string;
  }
  return { env, acl, sql: serviceRolesSql(COMPOSE_DATABASE, pgPasswords) };
}

/**
 * What the local stack adds to the credentials: the dev profile (mail inbox, OpenID provider) and the
 * settings that point at it. A deployment sets these itself (deploy/production.env.example).
 */
export const DEV_SETTINGS: Record<string, string> = {
  COMPOSE_PROFILES: 'dev',
  SMTP_URL: 'smtp://mail:1025',
  PUBLIC_URL: 'http://localhost:3000',
  GOOGLE_ISSUER: 'http://oidc:8080',
  GOOGLE_CLIENT_ID: 'atoll-local',
  GOOGLE_CLIENT_SECRET: 'atoll-local-secret',
  GOOGLE_REDIRECT_URL: 'http://localhost:3000/api/auth/google/callback',
};

const envLines = (env: Record<string, string>) =>
  `${Object.entries(env)
    .map(([k, v]) => `${k}=${v}`)
    .join('\n')}\n`;

/** The variables of an env file (`NAME=value` lines) as written here; none when it is missing. */
export function readEnvFile(file: string): Record<string, string> {
  if (!existsSync(file)) return {};
  return Object.fromEntries(
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/**
 * Writes `text` unless the file already holds it: `npm run compose` runs this script every time, and a
 * running container that mounts one of these files must never see it half written.
 */
function writeIfChanged(file: string, text: string, mode: number): void {
  if (!existsSync(file) || readFileSync(file, 'utf8') !== text) writeFileSync(file, text, { mode });
  chmodSync(file, mode);
}

if (import.meta.main) {
  const dir = resolve(import.meta.dirname, '..', '.atoll', 'compose');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const envFile = join(dir, 'credentials.env');
  const { env, acl, sql } = composeCredentials(readEnvFile(envFile));
  writeIfChanged(envFile, envLines(env), 0o600);
  writeIfChanged(join(dir, 'dev.env'), envLines({ ...env, ...DEV_SETTINGS }), 0o600);
  // Hashes and verifiers only: the containers' own users (redis, postgres) must read them.
  for (const [name, text] of Object.entries(acl)) writeIfChanged(join(dir, `redis-${name}.acl`), text, 0o644);
  writeIfChanged(join(dir, 'postgres-roles.sql'), sql, 0o644);
  console.log(`wrote ${dir}: docker compose --env-file .atoll/compose/dev.env up --build`);
}
