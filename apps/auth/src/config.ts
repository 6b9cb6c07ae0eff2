import type { KeyObject } from 'node:crypto';
import { availableParallelism } from 'node:os';
import {
  ConfigError,
  Env,
  identityPublicKeys,
  identityVerifyingEnv,
  parseEnv,
  type ServiceConfig,
  serviceConfig,
  serviceEnv,
  sessionConfig,
  sessionEnv,
  Type,
} from '@atoll/config';
import type { LoginLimits } from './security/login-limiter.ts';
import type { PasswordChangeLimits } from './security/password-change-limiter.ts';
import type { RegistrationLimits } from './security/registration-limiter.ts';
import { foldAscii } from './users/fold.ts';
import type { HashPoolSettings } from './users/hash-pool.ts';
import type { Argon2Cost } from './users/password.ts';

export const EnvSchema = Type.Object({
  ...serviceEnv(3001),
  ...identityVerifyingEnv(),
  ...sessionEnv(),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
  SESSION_COOKIE_SECURE: Env.boolean(
    true,
    'send the session cookie over HTTPS only (false only for local HTTP)',
  ),
  SESSION_MAX_PER_USER: Type.Integer({
    minimum: 1,
    default: 20,
    description: 'live sessions per user; a new sign-in beyond it ends the oldest session',
  }),
  REAUTH_WINDOW_S: Env.seconds(
    900,
    'how long after a sign-in its session may change the email or password without the current password',
  ),
  LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      'failed attempts (password, verification code) on one account from one client address in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_ADDRESS: Type.Integer({
    minimum: 1,
    default: 100,
    description:
      'failed attempts (password, verification code, reset token) from one client address in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_ACCOUNT: Type.Integer({
    minimum: 1,
    default: 100,
    description:
      'failed attempts on one account from all addresses together in one window before 429 (a ceiling against guessing from many places)',
  }),
  LOGIN_MAX_FAILURES_PER_ACCOUNT_IPV6_56: Type.Integer({
    minimum: 1,
    default: 10,
    description: 'failed attempts on one account from one IPv6 /56 in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_ACCOUNT_IPV6_48: Type.Integer({
    minimum: 1,
    default: 20,
    description: 'failed attempts on one account from one IPv6 /48 in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_IPV6_56: Type.Integer({
    minimum: 1,
    default: 200,
    description: 'failed attempts from one IPv6 /56 (across accounts) in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_IPV6_48: Type.Integer({
    minimum: 1,
    default: 400,
    description: 'failed attempts from one IPv6 /48 (across accounts) in one window before 429',
  }),
  LOGIN_MAX_FAILURES_PER_DEVICE: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      'failed logins from a browser with a valid device cookie for the account, in one window before 429 (such a login counts against nothing else, so the per-account ceiling never locks the owner out)',
  }),
  LOGIN_FAILURE_WINDOW_S: Env.seconds(900, 'the window failed attempts are counted in'),
  DEVICE_COOKIE_NAME: Type.String({
    pattern: '^[A-Za-z0-9_-]+$',
    default: '__Host-atoll_device',
    description:
      'the name of the device cookie a browser gets when it signs in (with the __Host- prefix only where SESSION_COOKIE_SECURE is true)',
  }),
  DEVICE_COOKIE_TTL_S: Env.seconds(180 * 24 * 3600, 'how long a device cookie stays valid'),
  DEVICE_COOKIE_MAX_PER_ACCOUNT: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 10,
    description:
      'live device cookies one account keeps; a sign-in from a new browser beyond it ends the trust of the oldest',
  }),
  PASSWORD_DENY_COMMON: Env.boolean(
    true,
    'refuse the 50,000 most common passwords of 8 characters or more as a new password (off only where conformance suites sign up with "password")',
  ),
  PASSWORD_ARGON2_MEMORY_KIB: Type.Integer({
    minimum: 19456,
    maximum: 1048576,
    default: 65536,
    description:
      "the Argon2id memory cost of new password hashes in KiB (65536: 64 MiB per hash; 19456, OWASP's minimum, at least); a login replaces a hash made at a lower cost",
  }),
  PASSWORD_ARGON2_ITERATIONS: Type.Integer({
    minimum: 2,
    maximum: 16,
    default: 3,
    description:
      "the Argon2id time cost (passes over the memory) of new password hashes (2, OWASP's minimum, at least)",
  }),
  PASSWORD_HASH_CONCURRENCY: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 64,
      description:
        "password hashes or checks running at once (each holds its Argon2id memory and one of libuv's threads); unset: the number of cores, at most 4",
    }),
  ),
  PASSWORD_HASH_QUEUE: Type.Integer({
    minimum: 0,
    maximum: 1000,
    default: 8,
    description:
      'password hashes or checks that may wait for a turn; beyond it a sign-up, login or password change answers 503 AUTH_HASHING_BUSY with Retry-After',
  }),
  PASSWORD_HASH_PER_CLIENT: Type.Integer({
    minimum: 1,
    maximum: 1000,
    default: 4,
    description:
      'password hashes or checks one client may have running or waiting at once, counted at its address and at each network around it (IPv4 /24; IPv6 /64, /56 and /48); beyond it that client gets 503 AUTH_HASHING_BUSY, so one place cannot take the whole pool',
  }),
  PASSWORD_HASH_NEW_MAX: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 1000,
      description:
        'new password hashes (sign-up, password change, reset) running or waiting at once; the other places are kept for logins and re-authentication, which also go first; unset: half of PASSWORD_HASH_CONCURRENCY + PASSWORD_HASH_QUEUE, at least 1',
    }),
  ),
  PASSWORD_HASH_MAX_WAIT_MS: Env.milliseconds(
    4000,
    'how long a password hash or check may wait for a turn before it answers 503 AUTH_HASHING_BUSY after all; keep it well under the gateway’s UPSTREAM_TIMEOUT_MS',
  ),
  PASSWORD_CHANGE_MAX: Type.Integer({
    minimum: 1,
    default: 5,
    description:
      'password changes (PUT /api/user with a password) per account in one window before 429 AUTH_TOO_MANY_PASSWORD_CHANGES',
  }),
  PASSWORD_CHANGE_WINDOW_S: Env.seconds(3600, 'the window password changes are counted in'),
  REGISTRATION_MAX_PER_ADDRESS: Type.Integer({
    minimum: 1,
    default: 100,
    description:
      'sign-ups from one IPv4 address, and from one IPv6 /64, /56 and /48, in one window before 429 AUTH_TOO_MANY_REGISTRATIONS (each costs a password hash; room for a class behind one NAT)',
  }),
  REGISTRATION_WINDOW_S: Env.seconds(3600, 'the window sign-ups are counted in'),
  GOOGLE_ISSUER: Type.String({
    pattern: '^https?://[^\\s]+$',
    default: 'https://accounts.google.com',
    description: "the OpenID provider's issuer URL (Google, or a local provider)",
  }),
  GOOGLE_CLIENT_ID: Type.Optional(
    Type.String({ minLength: 1, description: 'the OAuth client id; unset: Google sign-in is off' }),
  ),
  GOOGLE_CLIENT_SECRET: Type.Optional(
    Type.String({ minLength: 1, 'x-secret': true, description: 'the OAuth client secret' }),
  ),
  GOOGLE_REDIRECT_URL: Type.Optional(
    Type.String({
      pattern: '^https?://[^\\s]+$',
      description: 'the public callback URL, e.g. https://api.example.com/api/auth/google/callback',
    }),
  ),
  ADMIN_EMAILS: Type.String({
    default: '',
    pattern: '^([^\\s,@]+@[^\\s,@]+)?(,[^\\s,@]+@[^\\s,@]+)*$',
    description:
      'comma-separated email addresses whose accounts get the admin role (the queue dashboard) once the address is verified',
  }),
  INTERNAL_TOKEN: Type.Optional(
    Env.secret(
      'the bearer token content sends to GET /internal/profiles/:username (the same value as its AUTH_INTERNAL_TOKEN; unset: that route refuses everyone)',
    ),
  ),
  OAUTH_RETURN_ORIGINS: Type.String({
    default: '',
    pattern: '^(https?://[^\\s,/]+)?(,https?://[^\\s,/]+)*$',
    description:
      'comma-separated origins a sign-in may return the browser to (paths on this site always may)',
  }),
});

export interface AuthConfig extends ServiceConfig {
  /** The gateway’s public key(s): identity assertions are checked with them. */
  identityPublicKeys: KeyObject[];
  databaseUrl: string;
  /** The bearer token `GET /internal/profiles/:username` asks for; null: that route refuses everyone. */
  internalToken: string | null;
  redis: { session: string; queue: string };
  session: ReturnType<typeof sessionConfig> & { cookieSecure: boolean; maxPerUser: number };
  /** How long a session counts as a recent sign-in (re-authentication before email/password changes). */
  reauthWindowMs: number;
  login: LoginLimits;
  /** The device cookie's name and life (its Secure flag follows the session cookie's). */
  deviceCookie: { name: string; ttlS: number; maxPerAccount: number };
  /** Argon2id cost of new password hashes. */
  passwordCost: Argon2Cost;
  /** Admission of password hashing: how many at once, how many may wait. */
  passwordPool: HashPoolSettings;
  passwordChanges: PasswordChangeLimits;
  registrations: RegistrationLimits;
  passwordDenyCommon: boolean;
  google: { issuer: string; clientId: string; clientSecret: string; redirectUrl: string } | null;
  returnOrigins: string[];
  /** Lower-cased; an account gets the admin role when its verified email is one of these. */
  adminEmails: string[];
}

function passwordPool(e: {
  PASSWORD_HASH_CONCURRENCY?: number | undefined;
  PASSWORD_HASH_QUEUE: number;
  PASSWORD_HASH_PER_CLIENT: number;
  PASSWORD_HASH_NEW_MAX?: number | undefined;
  PASSWORD_HASH_MAX_WAIT_MS: number;
}): HashPoolSettings {
  // libuv runs four threads by default: more hashes at once than that would only wait there.
  const concurrency = e.PASSWORD_HASH_CONCURRENCY ?? Math.min(availableParallelism(), 4);
  return {
    concurrency,
    queue: e.PASSWORD_HASH_QUEUE,
    perClient: e.PASSWORD_HASH_PER_CLIENT,
    // Half the places for new hashes: a flood of sign-ups leaves the other half to those signing in.
    newHashes: e.PASSWORD_HASH_NEW_MAX ?? Math.max(1, Math.floor((concurrency + e.PASSWORD_HASH_QUEUE) / 2)),
    maxWaitMs: e.PASSWORD_HASH_MAX_WAIT_MS,
  };
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  const e = parseEnv(EnvSchema, env);
  if (e.GOOGLE_CLIENT_ID && (!e.GOOGLE_CLIENT_SECRET || !e.GOOGLE_REDIRECT_URL)) {
    throw new ConfigError([
      'GOOGLE_CLIENT_ID is set but GOOGLE_CLIENT_SECRET or GOOGLE_REDIRECT_URL is missing: set all three, or none to turn Google sign-in off',
    ]);
  }
  if (/^__(Host|Secure)-/.test(e.DEVICE_COOKIE_NAME) && !e.SESSION_COOKIE_SECURE) {
    throw new ConfigError([
      `DEVICE_COOKIE_NAME ${e.DEVICE_COOKIE_NAME} needs a Secure cookie, but SESSION_COOKIE_SECURE is false: browsers would refuse it; name it without the prefix for plain-HTTP development`,
    ]);
  }
  return {
    ...serviceConfig(e),
    identityPublicKeys: identityPublicKeys(e),
    databaseUrl: e.DATABASE_URL,
    internalToken: e.INTERNAL_TOKEN ?? null,
    redis: { session: e.REDIS_SESSION_URL, queue: e.REDIS_QUEUE_URL },
    session: {
      ...sessionConfig(e),
      cookieSecure: e.SESSION_COOKIE_SECURE,
      maxPerUser: e.SESSION_MAX_PER_USER,
    },
    reauthWindowMs: e.REAUTH_WINDOW_S * 1000,
    login: {
      perAccountAddress: e.LOGIN_MAX_FAILURES_PER_ACCOUNT_ADDRESS,
      perAccount: e.LOGIN_MAX_FAILURES_PER_ACCOUNT,
      perAddress: e.LOGIN_MAX_FAILURES_PER_ADDRESS,
      perAccountPrefix56: e.LOGIN_MAX_FAILURES_PER_ACCOUNT_IPV6_56,
      perAccountPrefix48: e.LOGIN_MAX_FAILURES_PER_ACCOUNT_IPV6_48,
      perPrefix56: e.LOGIN_MAX_FAILURES_PER_IPV6_56,
      perPrefix48: e.LOGIN_MAX_FAILURES_PER_IPV6_48,
      perDevice: e.LOGIN_MAX_FAILURES_PER_DEVICE,
      windowMs: e.LOGIN_FAILURE_WINDOW_S * 1000,
    },
    deviceCookie: {
      name: e.DEVICE_COOKIE_NAME,
      ttlS: e.DEVICE_COOKIE_TTL_S,
      maxPerAccount: e.DEVICE_COOKIE_MAX_PER_ACCOUNT,
    },
    passwordCost: { memoryKiB: e.PASSWORD_ARGON2_MEMORY_KIB, iterations: e.PASSWORD_ARGON2_ITERATIONS },
    passwordPool: passwordPool(e),
    passwordChanges: { max: e.PASSWORD_CHANGE_MAX, windowMs: e.PASSWORD_CHANGE_WINDOW_S * 1000 },
    registrations: {
      maxPerAddress: e.REGISTRATION_MAX_PER_ADDRESS,
      windowMs: e.REGISTRATION_WINDOW_S * 1000,
    },
    passwordDenyCommon: e.PASSWORD_DENY_COMMON,
    google:
      e.GOOGLE_CLIENT_ID && e.GOOGLE_CLIENT_SECRET && e.GOOGLE_REDIRECT_URL
        ? {
            issuer: e.GOOGLE_ISSUER,
            clientId: e.GOOGLE_CLIENT_ID,
            clientSecret: e.GOOGLE_CLIENT_SECRET,
            redirectUrl: e.GOOGLE_REDIRECT_URL,
          }
        : null,
    returnOrigins: e.OAUTH_RETURN_ORIGINS ? e.OAUTH_RETURN_ORIGINS.split(',') : [],
    adminEmails: e.ADMIN_EMAILS ? foldAscii(e.ADMIN_EMAILS).split(',') : [],
  };
}
