import type { KeyObject } from 'node:crypto';
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
  LOGIN_FAILURE_WINDOW_S: Env.seconds(900, 'the window failed attempts are counted in'),
  PASSWORD_DENY_COMMON: Env.boolean(
    true,
    'refuse the 50,000 most common passwords of 8 characters or more as a new password (off only where conformance suites sign up with "password")',
  ),
  PASSWORD_SCRYPT_LOG2_N: Type.Integer({
    minimum: 15,
    maximum: 20,
    default: 17,
    description:
      'the scrypt cost of new password hashes as log2(N), with r=8 and p=1 (17: 128 MiB per hash); a login replaces a hash made at a lower cost',
  }),
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
  redis: { session: string; queue: string };
  session: ReturnType<typeof sessionConfig> & { cookieSecure: boolean; maxPerUser: number };
  /** How long a session counts as a recent sign-in (re-authentication before email/password changes). */
  reauthWindowMs: number;
  login: LoginLimits;
  /** scrypt cost of new password hashes, as log2(N). */
  passwordLog2N: number;
  passwordDenyCommon: boolean;
  google: { issuer: string; clientId: string; clientSecret: string; redirectUrl: string } | null;
  returnOrigins: string[];
  /** Lower-cased; an account gets the admin role when its verified email is one of these. */
  adminEmails: string[];
}

export function loadConfig(env: Record<string, string | undefined> = process.env): AuthConfig {
  const e = parseEnv(EnvSchema, env);
  if (e.GOOGLE_CLIENT_ID && (!e.GOOGLE_CLIENT_SECRET || !e.GOOGLE_REDIRECT_URL)) {
    throw new ConfigError([
      'GOOGLE_CLIENT_ID is set but GOOGLE_CLIENT_SECRET or GOOGLE_REDIRECT_URL is missing: set all three, or none to turn Google sign-in off',
    ]);
  }
  return {
    ...serviceConfig(e),
    identityPublicKeys: identityPublicKeys(e),
    databaseUrl: e.DATABASE_URL,
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
      windowMs: e.LOGIN_FAILURE_WINDOW_S * 1000,
    },
    passwordLog2N: e.PASSWORD_SCRYPT_LOG2_N,
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
    adminEmails: e.ADMIN_EMAILS ? e.ADMIN_EMAILS.toLowerCase().split(',') : [],
  };
}
