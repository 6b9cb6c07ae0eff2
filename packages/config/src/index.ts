/**
 * Configuration from the environment, parsed once at boot by a TypeBox schema.
 *
 * `parseEnv(schema, env)` applies defaults, converts strings to the schema's types, and throws a
 * `ConfigError` whose message is one line naming every missing or malformed variable and what it
 * should look like (from the schema's `description`). `main.ts` prints that line and exits non-zero.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parsePrivateKey, parsePublicKeys } from '@atoll/identity';
import Type, { type Static, type TObject, type TSchema } from 'typebox';
import Value from 'typebox/value';

export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration: ${problems.join('; ')}`);
    this.problems = problems;
    this.name = 'ConfigError';
  }
}

export function parseEnv<S extends TObject>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): Static<S> {
  const props = schema.properties as Record<string, TSchema & { description?: string }>;
  const picked: Record<string, unknown> = {};
  for (const name of Object.keys(props)) {
    const raw = env[name];
    // An empty variable counts as unset, so `FOO=` in a .env file falls back to the default.
    if (raw !== undefined && raw !== '') picked[name] = raw;
  }
  const value = Value.Convert(schema, Value.Default(schema, picked));
  const problems: string[] = [];
  for (const error of Value.Errors(schema, value)) {
    if (error.keyword === 'required') {
      const missing = (error.params as { requiredProperties?: string[] }).requiredProperties ?? [];
      for (const name of missing) problems.push(`${name} is missing${hint(props[name])}`);
      continue;
    }
    const name = error.instancePath.split('/')[1] ?? '';
    if (!name || problems.some((p) => p.startsWith(`${name} `))) continue;
    const schemaOf = props[name] as { 'x-secret'?: boolean } | undefined;
    // Never echo a secret; a pattern is shown through the description, not as a regular expression.
    const got = schemaOf?.['x-secret'] ? `${env[name]?.length ?? 0} characters` : JSON.stringify(env[name]);
    const what = error.keyword === 'pattern' ? 'is malformed' : error.message;
    problems.push(`${name} ${what} (got ${got})${hint(props[name])}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return value as Static<S>;
}

function hint(schema: { description?: string } | undefined): string {
  return schema?.description ? `: ${schema.description}` : '';
}

/** Reusable variable types, each with a description that the error message quotes. */
export const Env = {
  port: (defaultPort: number) =>
    Type.Integer({ minimum: 0, maximum: 65535, default: defaultPort, description: 'a TCP port, 0-65535' }),
  host: () =>
    Type.String({
      default: '127.0.0.1',
      description:
        'the address to listen on: loopback unless the deployment says otherwise (0.0.0.0 in a container, where only the gateway is published)',
    }),
  logLevel: () =>
    Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info', description: 'one of fatal, error, warn, info, debug, trace, silent' },
    ),
  redisUrl: (role: string) =>
    Type.String({
      // One server, a Sentinel group (its sentinels and the master name) or a Redis Cluster (seed nodes):
      // @atoll/redis url.ts parses it and names any other problem when the service connects (without the
      // password, which this check would echo).
      pattern:
        '^(rediss?://[^\\s]+|redis\\+sentinel://[^\\s/]+/[^\\s/?#]+(\\?[^\\s]*)?|redis\\+cluster://[^\\s]+)$',
      description: `the redis-${role} URL with the service's own ACL user: one server, redis://<user>:<password>@127.0.0.1:6379, a Sentinel group, redis+sentinel://<user>:<password>@<sentinel>:26379,<sentinel>:26379,…/<master name>, or a Redis Cluster, redis+cluster://<user>:<password>@<node>:6379,<node>:6379,… (see deploy/redis/${role}.conf and docs/redis.md)`,
    }),
  postgresUrl: () =>
    Type.String({
      pattern: '^postgres(ql)?://[^\\s]+$',
      description: 'a PostgreSQL URL, e.g. postgres://user:pass@127.0.0.1:5432/atoll',
    }),
  httpUrl: (what: string) =>
    Type.String({
      pattern: '^https?://[^\\s]+$',
      description: `the ${what} base URL, e.g. http://127.0.0.1:3001`,
    }),
  secret: (what: string) =>
    Type.String({
      minLength: 32,
      'x-secret': true,
      description: `${what}: at least 32 random characters (openssl rand -hex 32)`,
    }),
  milliseconds: (defaultMs: number, what: string) =>
    Type.Integer({ minimum: 1, default: defaultMs, description: `${what}, in milliseconds` }),
  seconds: (defaultS: number, what: string) =>
    Type.Integer({ minimum: 1, default: defaultS, description: `${what}, in seconds` }),
  keyPrefix: () =>
    Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$',
      default: 'atoll',
      description: 'the Redis key prefix of this deployment (letters, digits, _ . -)',
    }),
  boolean: (defaultValue: boolean, what: string) =>
    Type.Boolean({ default: defaultValue, description: `${what}: true or false` }),
};

export { type Static, Type };

/** The variables every atoll service reads, with the service's own default port. */
export function serviceEnv(defaultPort: number) {
  return {
    HOST: Env.host(),
    PORT: Env.port(defaultPort),
    LOG_LEVEL: Env.logLevel(),
    SHUTDOWN_GRACE_MS: Env.milliseconds(10_000, 'how long shutdown may take before the process is killed'),
    SHUTDOWN_DRAIN_MS: Type.Integer({
      minimum: 0,
      default: 0,
      description:
        'how long a service keeps serving after SIGTERM, not ready and telling the gateway it drains, before it stops accepting connections, in milliseconds (500 with several instances behind the gateway; for a load balancer that polls readiness, a few of its intervals; Kubernetes: 0 and a preStop sleep instead)',
    }),
    REDIS_KEY_PREFIX: Env.keyPrefix(),
    METRICS_TOKEN: Type.Optional(
      Env.secret('the bearer token a Prometheus scrape must send to read GET /metrics (unset: not served)'),
    ),
    REQUEST_TIMEOUT_MS: Env.milliseconds(
      DEFAULT_TIMEOUTS.requestMs,
      'how long a client may take to send a whole request, headers and body, before 408 and the connection closes (a live stream is a response: this does not end it)',
    ),
    CONNECTION_TIMEOUT_MS: Env.milliseconds(
      DEFAULT_TIMEOUTS.connectionMs,
      'how long a connection may carry no byte either way while a request is under way before it is closed (above every upstream timeout and the live stream heartbeat)',
    ),
    KEEP_ALIVE_TIMEOUT_MS: Env.milliseconds(
      DEFAULT_TIMEOUTS.keepAliveMs,
      'how long an idle keep-alive connection waits for its next request before it is closed (above the idle timeout of a load balancer in front)',
    ),
    SERVER_TIMING: Env.boolean(
      false,
      'answer with Server-Timing (database time and query count per request; the gateway passes it on only when set too); a hint for an attacker, for development and tests only',
    ),
  };
}

/** The server's timeouts (Node's http.Server: requestTimeout, the socket timeout, keepAliveTimeout). */
export interface ServerTimeouts {
  /** The whole request (headers and body) must have arrived within this. */
  requestMs: number;
  /** A connection with a request under way that carries no byte for this long is closed. */
  connectionMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveMs: number;
}

/** Node and Fastify default to none for the first two: a client sending a byte every 10 s held a request open. */
export const DEFAULT_TIMEOUTS: ServerTimeouts = {
  requestMs: 30_000,
  connectionMs: 60_000,
  keepAliveMs: 72_000,
};

/** The session timeouts, read by the gateway (which resolves sessions) and auth (which creates them). */
export function sessionEnv() {
  return {
    SESSION_IDLE_TIMEOUT_S: Env.seconds(7 * 24 * 3600, 'how long an unused session lives'),
    SESSION_ABSOLUTE_TIMEOUT_S: Env.seconds(30 * 24 * 3600, 'the longest any session lives'),
    SESSION_REFRESH_INTERVAL_S: Env.seconds(300, 'the least time between two idle-timeout refreshes'),
    SESSION_COOKIE_NAME: Type.String({
      pattern: '^[A-Za-z0-9_-]+$',
      default: '__Host-atoll_session',
      description: 'the name of the browser session cookie',
    }),
  };
}

export function sessionConfig(env: {
  SESSION_IDLE_TIMEOUT_S: number;
  SESSION_ABSOLUTE_TIMEOUT_S: number;
  SESSION_REFRESH_INTERVAL_S: number;
  SESSION_COOKIE_NAME: string;
}) {
  return {
    cookieName: env.SESSION_COOKIE_NAME,
    timeouts: {
      idleMs: env.SESSION_IDLE_TIMEOUT_S * 1000,
      absoluteMs: env.SESSION_ABSOLUTE_TIMEOUT_S * 1000,
      refreshMs: env.SESSION_REFRESH_INTERVAL_S * 1000,
    },
  };
}

/** The part of every service's configuration that `serviceEnv` produces, in application terms. */
export interface ServiceConfig {
  host: string;
  port: number;
  logLevel: string;
  shutdownGraceMs: number;
  /** How long to keep serving, not ready, after SIGTERM before the server closes (below the grace). */
  shutdownDrainMs: number;
  keyPrefix: string;
  /** The bearer token `GET /metrics` requires; null when metrics are not served. */
  metricsToken: string | null;
  timeouts: ServerTimeouts;
  /** Send Server-Timing (services with a database), and let it through (the gateway). */
  serverTiming: boolean;
}

export function serviceConfig(env: {
  HOST: string;
  PORT: number;
  LOG_LEVEL: string;
  SHUTDOWN_GRACE_MS: number;
  SHUTDOWN_DRAIN_MS: number;
  REDIS_KEY_PREFIX: string;
  METRICS_TOKEN?: string | undefined;
  REQUEST_TIMEOUT_MS: number;
  CONNECTION_TIMEOUT_MS: number;
  KEEP_ALIVE_TIMEOUT_MS: number;
  SERVER_TIMING: boolean;
}): ServiceConfig {
  if (env.SHUTDOWN_DRAIN_MS >= env.SHUTDOWN_GRACE_MS)
    throw new ConfigError([
      `SHUTDOWN_DRAIN_MS (${env.SHUTDOWN_DRAIN_MS}) must be below SHUTDOWN_GRACE_MS (${env.SHUTDOWN_GRACE_MS}): the drain is part of the grace period, and in-flight requests need time after it`,
    ]);
  return {
    host: env.HOST,
    port: env.PORT,
    logLevel: env.LOG_LEVEL,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    shutdownDrainMs: env.SHUTDOWN_DRAIN_MS,
    keyPrefix: env.REDIS_KEY_PREFIX,
    metricsToken: env.METRICS_TOKEN ?? null,
    timeouts: {
      requestMs: env.REQUEST_TIMEOUT_MS,
      connectionMs: env.CONNECTION_TIMEOUT_MS,
      keepAliveMs: env.KEEP_ALIVE_TIMEOUT_MS,
    },
    serverTiming: env.SERVER_TIMING,
  };
}

/**
 * The gateway's identity key: the Ed25519 private key it signs assertions with, given inline
 * (IDENTITY_PRIVATE_KEY) or as a file (IDENTITY_PRIVATE_KEY_FILE), one of the two. No service but the
 * gateway reads it.
 */
export function identitySigningEnv() {
  return {
    IDENTITY_PRIVATE_KEY: Type.Optional(
      Type.String({
        'x-secret': true,
        description:
          'the Ed25519 private key the gateway signs identity assertions with: PEM (PKCS#8) or the base64 of its DER on one line (pnpm identity-keys makes a pair)',
      }),
    ),
    IDENTITY_PRIVATE_KEY_FILE: Type.Optional(
      Type.String({
        description: 'a file holding IDENTITY_PRIVATE_KEY instead (readable by the gateway only, mode 0600)',
      }),
    ),
  };
}

/**
 * A service's identity keys: the gateway's Ed25519 public key, and during a rotation the other one (two
 * at most), inline (IDENTITY_PUBLIC_KEYS) or as a file (IDENTITY_PUBLIC_KEYS_FILE), one of the two.
 */
export function identityVerifyingEnv() {
  return {
    IDENTITY_PUBLIC_KEYS: Type.Optional(
      Type.String({
        description:
          "the gateway's Ed25519 public key(s) identity assertions are checked with, one or two (during a rotation): PEM (SPKI) blocks, or the base64 of their DER, comma-separated",
      }),
    ),
    IDENTITY_PUBLIC_KEYS_FILE: Type.Optional(
      Type.String({ description: 'a file holding IDENTITY_PUBLIC_KEYS instead' }),
    ),
  };
}

/** The text of a key setting: the variable, or the file the `_FILE` variable names; exactly one. */
function keySetting(
  env: Record<string, string | undefined>,
  name: string,
  what: string,
): { text: string; from: string } {
  const inline = env[name];
  const file = env[`${name}_FILE`];
  if (inline && file) throw new ConfigError([`set ${name} or ${name}_FILE, not both`]);
  if (inline) return { text: inline, from: name };
  if (!file)
    throw new ConfigError([
      `${name} is missing: ${what} (or ${name}_FILE, a file holding it; pnpm identity-keys makes a pair)`,
    ]);
  try {
    return { text: readFileSync(file, 'utf8'), from: `${name}_FILE (${file})` };
  } catch (err) {
    throw new ConfigError([`${name}_FILE cannot be read (${file}): ${(err as Error).message}`]);
  }
}

export function identityPrivateKey(env: {
  IDENTITY_PRIVATE_KEY?: string | undefined;
  IDENTITY_PRIVATE_KEY_FILE?: string | undefined;
}): KeyObject {
  const { text, from } = keySetting(
    env,
    'IDENTITY_PRIVATE_KEY',
    'the Ed25519 private key the gateway signs identity assertions with',
  );
  try {
    return parsePrivateKey(text);
  } catch (err) {
    throw new ConfigError([
      `${from} is not an Ed25519 private key (PEM or base64 DER): ${(err as Error).message}`,
    ]);
  }
}

export function identityPublicKeys(env: {
  IDENTITY_PUBLIC_KEYS?: string | undefined;
  IDENTITY_PUBLIC_KEYS_FILE?: string | undefined;
}): KeyObject[] {
  const { text, from } = keySetting(
    env,
    'IDENTITY_PUBLIC_KEYS',
    "the gateway's Ed25519 public key(s) identity assertions are checked with",
  );
  let keys: KeyObject[];
  try {
    keys = parsePublicKeys(text);
  } catch (err) {
    throw new ConfigError([
      `${from} is not one or two Ed25519 public keys (PEM or base64 DER): ${(err as Error).message}`,
    ]);
  }
  if (keys.length > 2)
    throw new ConfigError([
      `${from} has ${keys.length} keys: at most two (the current and, during a rotation, the other)`,
    ]);
  return keys;
}
