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
  Type,
} from '@atoll/config';

const Cron = (fallback: string, what: string) =>
  Type.String({
    pattern: '^\\S+( \\S+){4,5}$',
    default: fallback,
    description: `when the ${what} digest runs: a cron pattern in UTC, e.g. "${fallback}"`,
  });

export const EnvSchema = Type.Object({
  ...serviceEnv(3003),
  ...identityVerifyingEnv(),
  DATABASE_URL: Env.postgresUrl(),
  REDIS_QUEUE_URL: Env.redisUrl('queue'),
  REDIS_SESSION_URL: Env.redisUrl('session'),
  SMTP_URL: Type.String({
    pattern: '^smtps?://[^\\s]+$',
    description: 'the SMTP server mail goes out through, e.g. smtp://user:pass@smtp.example.com:587',
  }),
  MAIL_FROM: Type.String({
    minLength: 3,
    default: 'atoll <no-reply@atoll.local>',
    description: 'the From of every email',
  }),
  PUBLIC_URL: Env.httpUrl('public site (links in emails)'),
  EMAIL_RATE_MAX: Type.Integer({
    minimum: 1,
    default: 50,
    description: 'at most this many emails per EMAIL_RATE_WINDOW_MS, across every notifier',
  }),
  EMAIL_RATE_WINDOW_MS: Env.milliseconds(1000, 'the window of the SMTP rate limit'),
  SECURITY_EMAIL_RATE_MAX: Type.Integer({
    minimum: 1,
    default: 20,
    description:
      'at most this many security emails (codes, reset links, email-change notices) per SECURITY_EMAIL_RATE_WINDOW_MS, across every notifier; a limit of their own, apart from EMAIL_RATE_MAX',
  }),
  SECURITY_EMAIL_RATE_WINDOW_MS: Env.milliseconds(1000, 'the window of the security email rate limit'),
  SECURITY_EMAIL_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 100,
    default: 5,
    description: 'security emails sent at once by this instance (their own worker and SMTP connections)',
  }),
  WORKER_CONCURRENCY: Type.Integer({
    minimum: 1,
    maximum: 500,
    default: 20,
    description: 'jobs processed at once per queue by this instance',
  }),
  JOB_LOCK_MS: Env.milliseconds(
    30_000,
    "how long a job's lock lives without renewal (a silent worker is dead)",
  ),
  JOB_STALLED_INTERVAL_MS: Env.milliseconds(30_000, 'how often jobs of dead workers are looked for'),
  NOTIFY_MAIL_CAP_PER_RECIPIENT: Type.Integer({
    minimum: 1,
    default: 10,
    description:
      'instant notification emails one user gets per NOTIFY_MAIL_CAP_WINDOW_MS; beyond it they wait for the next digest',
  }),
  NOTIFY_MAIL_CAP_PER_ACTOR: Type.Integer({
    minimum: 1,
    default: 20,
    description:
      "instant notification emails one user's actions (comments, mentions, follows, favorites) cause per NOTIFY_MAIL_CAP_WINDOW_MS, to everyone together; beyond it they wait for the digests",
  }),
  NOTIFY_MAIL_CAP_WINDOW_MS: Env.milliseconds(3_600_000, 'the window of the notification mail caps'),
  NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: Type.Integer({
    minimum: 0,
    default: 86_400_000,
    description:
      'how old an account must be (and its email verified) before what it does (comments, mentions, follows, favorites) is emailed to others, at once or in a digest; younger or unverified, its notifications are in-app only; in milliseconds, 0: verified is enough',
  }),
  REDIS_AUDIT_INTERVAL_MS: Type.Integer({
    minimum: 0,
    default: 0,
    description:
      'how often this notifier audits the Redis key space for its /metrics (redis_audit_*: keys and memory per key family, violations; the checks of pnpm redis:audit), in milliseconds, e.g. 300000; 0: never. Audits the instances whose REDIS_AUDIT_*_URL is set',
  }),
  REDIS_AUDIT_CACHE_URL: Type.Optional(
    Type.String({
      pattern: '^(rediss?|redis\\+cluster)://[^\\s]+$',
      description:
        "the redis-cache URL with the key-space audit's own ACL user (`audit`, read-only: SCAN, TYPE, PTTL, MEMORY USAGE), for REDIS_AUDIT_INTERVAL_MS; unset: redis-cache is not audited",
    }),
  ),
  REDIS_AUDIT_SESSION_URL: Type.Optional(
    Type.String({
      pattern: '^(rediss?|redis\\+cluster)://[^\\s]+$',
      description:
        "the redis-session URL with the key-space audit's own ACL user (`audit`, read-only: SCAN, TYPE, PTTL, MEMORY USAGE), for REDIS_AUDIT_INTERVAL_MS; unset: redis-session is not audited",
    }),
  ),
  REDIS_AUDIT_QUEUE_URL: Type.Optional(
    Type.String({
      pattern: '^(rediss?|redis\\+cluster)://[^\\s]+$',
      description:
        "the redis-queue URL with the key-space audit's own ACL user (`audit`, read-only: SCAN, TYPE, PTTL, MEMORY USAGE), for REDIS_AUDIT_INTERVAL_MS; unset: redis-queue is not audited",
    }),
  ),
  DIGEST_DAILY_CRON: Cron('0 7 * * *', 'daily'),
  DIGEST_WEEKLY_CRON: Cron('0 7 * * 1', 'weekly'),
});

export interface NotifierConfig extends ServiceConfig {
  /** The gateway’s public key(s): identity assertions are checked with them. */
  identityPublicKeys: KeyObject[];
  databaseUrl: string;
  redis: { queue: string; session: string };
  smtpUrl: string;
  mailFrom: string;
  publicUrl: string;
  emailRate: { max: number; duration: number };
  securityEmail: { rate: { max: number; duration: number }; concurrency: number };
  workers: { concurrency: number; lockDurationMs: number; stalledIntervalMs: number };
  digestCron: { daily: string; weekly: string };
  mailCaps: MailCaps;
  /** The key-space audit for /metrics (service-kit key-audit.ts); null: off. */
  keyAudit: { intervalMs: number; urls: Partial<Record<'cache' | 'session' | 'queue', string>> } | null;
}

/** The limits on instant notification mail (see notifications/mail-caps.ts). */
export interface MailCaps {
  perRecipient: number;
  perActor: number;
  windowMs: number;
  /** An actor younger than this (or unverified) causes no notification mail (mail-rules.ts). */
  minActorAgeMs: number;
}

export function loadConfig(env: Record<string, string | undefined> = process.env): NotifierConfig {
  const e = parseEnv(EnvSchema, env);
  const auditUrls = Object.fromEntries(
    Object.entries({
      cache: e.REDIS_AUDIT_CACHE_URL,
      session: e.REDIS_AUDIT_SESSION_URL,
      queue: e.REDIS_AUDIT_QUEUE_URL,
    }).filter(([, url]) => url),
  );
  if (e.REDIS_AUDIT_INTERVAL_MS > 0 && Object.keys(auditUrls).length === 0) {
    throw new ConfigError([
      "REDIS_AUDIT_INTERVAL_MS is set but no REDIS_AUDIT_CACHE_URL, REDIS_AUDIT_SESSION_URL or REDIS_AUDIT_QUEUE_URL: give the audit user's URL of each instance to audit, or set REDIS_AUDIT_INTERVAL_MS=0",
    ]);
  }
  return {
    ...serviceConfig(e),
    identityPublicKeys: identityPublicKeys(e),
    databaseUrl: e.DATABASE_URL,
    redis: { queue: e.REDIS_QUEUE_URL, session: e.REDIS_SESSION_URL },
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    publicUrl: e.PUBLIC_URL.replace(/\/$/, ''),
    emailRate: { max: e.EMAIL_RATE_MAX, duration: e.EMAIL_RATE_WINDOW_MS },
    securityEmail: {
      rate: { max: e.SECURITY_EMAIL_RATE_MAX, duration: e.SECURITY_EMAIL_RATE_WINDOW_MS },
      concurrency: e.SECURITY_EMAIL_CONCURRENCY,
    },
    workers: {
      concurrency: e.WORKER_CONCURRENCY,
      lockDurationMs: e.JOB_LOCK_MS,
      stalledIntervalMs: e.JOB_STALLED_INTERVAL_MS,
    },
    digestCron: { daily: e.DIGEST_DAILY_CRON, weekly: e.DIGEST_WEEKLY_CRON },
    mailCaps: {
      perRecipient: e.NOTIFY_MAIL_CAP_PER_RECIPIENT,
      perActor: e.NOTIFY_MAIL_CAP_PER_ACTOR,
      windowMs: e.NOTIFY_MAIL_CAP_WINDOW_MS,
      minActorAgeMs: e.NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS,
    },
    keyAudit:
      e.REDIS_AUDIT_INTERVAL_MS > 0 ? { intervalMs: e.REDIS_AUDIT_INTERVAL_MS, urls: auditUrls } : null,
  };
}
