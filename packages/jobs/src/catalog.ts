/**
 * The catalog of queues and jobs: for each job, its versioned payload schema; for each queue, the retry,
 * backoff and retention policy. Producers validate a payload before it is enqueued (`enqueue`), workers
 * validate it again when they receive it, and a worker must have a handler for every job of its queue
 * (`Handlers<Q>` makes that a compile error).
 *
 * A payload carries its version as `v`. A new version is added next to the old one; workers accept both
 * until no producer emits the old one.
 */

import type { JobsOptions } from 'bullmq';
import Type, { type Static, type TSchema } from 'typebox';

const Email = Type.String({ minLength: 3, maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+$' });

/**
 * Security mail carries no secret. v1 of these two jobs carried the code or the reset token itself, so
 * that anyone who could read redis-queue (the admin dashboard, a queue dump, 24 h of completed jobs, 7
 * days of failed ones) could take the account. From v2 auth writes the secret to a short-lived record
 * of its own (`keys.mailSecret(jobId)` on redis-session, TTL the secret's life) and the notifier reads it
 * when it sends the email and deletes it once sent. See RETIRED_VERSIONS for what happens to a v1 job.
 */
const VerificationCodeV2 = Type.Object(
  {
    v: Type.Literal(2),
    userId: Type.String({ minLength: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
    expiresAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
  },
  { additionalProperties: false },
);

const PasswordResetV2 = Type.Object(
  {
    v: Type.Literal(2),
    userId: Type.String({ minLength: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
    expiresAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
  },
  { additionalProperties: false },
);

const WelcomeV1 = Type.Object(
  {
    v: Type.Literal(1),
    userId: Type.String({ minLength: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
  },
  { additionalProperties: false },
);

/**
 * To the OLD address of an account whose email was just changed: a change the owner did not make is the
 * sign of a taken-over account. The new address only masked (`a***@example.com`): the old address may
 * no longer be the owner's.
 */
const EmailChangedV1 = Type.Object(
  {
    v: Type.Literal(1),
    userId: Type.String({ minLength: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
    newEmailMasked: Type.String({ minLength: 3, maxLength: 254 }),
    changedAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
  },
  { additionalProperties: false },
);

const NotificationType = Type.Union([
  Type.Literal('follow'),
  Type.Literal('favorite'),
  Type.Literal('comment'),
  Type.Literal('mention'),
]);
const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** What one notification says, in an email of its own or as a line of a digest. */
const NotificationItem = {
  type: NotificationType,
  actorUsername: Type.String({ minLength: 1 }),
  articleSlug: Nullable(Type.String({ minLength: 1 })),
  articleTitle: Nullable(Type.String({ minLength: 1 })),
  excerpt: Nullable(Type.String({ maxLength: 280 })),
};

/** One notification mailed at once (the recipient's preference for its type is `instant`). */
const NotificationEmailV1 = Type.Object(
  {
    v: Type.Literal(1),
    notificationId: Type.Integer({ minimum: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
    ...NotificationItem,
  },
  { additionalProperties: false },
);

/** What is unread since the last digest (at most 50 lines; `total` counts them all). */
const DigestEmailV1 = Type.Object(
  {
    v: Type.Literal(1),
    userId: Type.String({ minLength: 1 }),
    to: Email,
    username: Type.String({ minLength: 1 }),
    period: Type.Union([Type.Literal('daily'), Type.Literal('weekly')]),
    items: Type.Array(Type.Object(NotificationItem, { additionalProperties: false }), { maxItems: 50 }),
    total: Type.Integer({ minimum: 1 }),
  },
  { additionalProperties: false },
);

/** A digest run for every user whose digest is due at this period (the job scheduler adds them). */
const DigestRunV1 = Type.Object(
  { v: Type.Literal(1), period: Type.Union([Type.Literal('daily'), Type.Literal('weekly')]) },
  { additionalProperties: false },
);

/** Who did something to whom, the common part of every notification. */
const NotificationBase = {
  v: Type.Literal(1),
  actorId: Type.String({ minLength: 1 }),
  actorUsername: Type.String({ minLength: 1 }),
  recipientId: Type.String({ minLength: 1 }),
  occurredAt: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T' }),
};
const OnArticle = {
  articleSlug: Type.String({ minLength: 1 }),
  articleTitle: Type.String({ minLength: 1 }),
};

const FollowV1 = Type.Object(NotificationBase, { additionalProperties: false });
const FavoriteV1 = Type.Object({ ...NotificationBase, ...OnArticle }, { additionalProperties: false });
const CommentV1 = Type.Object(
  {
    ...NotificationBase,
    ...OnArticle,
    commentId: Type.Integer({ minimum: 1 }),
    excerpt: Type.String({ maxLength: 280 }),
  },
  { additionalProperties: false },
);
/** `@username` in a comment (commentId set) or in an article's body (commentId null). */
const MentionV1 = Type.Object(
  {
    ...NotificationBase,
    ...OnArticle,
    commentId: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()]),
    excerpt: Type.String({ maxLength: 280 }),
  },
  { additionalProperties: false },
);

/** Rebuild a ranking from PostgreSQL (content's scheduled job, once per interval across all instances). */
const RecomputeV1 = Type.Object(
  {
    v: Type.Literal(1),
    ranking: Type.Union([Type.Literal('trending'), Type.Literal('leaderboard')]),
  },
  { additionalProperties: false },
);

/** Exponential backoff with jitter, so a recovering SMTP server is not hit by every retry at once. */
const retried = (attempts: number, firstDelayMs: number): JobsOptions => ({
  attempts,
  backoff: { type: 'exponential', delay: firstDelayMs, jitter: 0.5 },
  // Bounded retention: completed jobs for a day (at most 10 000), failed ones for a week (at most 50 000),
  // visible and retryable meanwhile.
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 50_000 },
});

/**
 * The entries BullMQ keeps in each queue's events stream (`streams.events.maxLen`, its default made
 * explicit): the producer's queues are opened with it, and the key-space audit bounds the stream by it.
 */
export const EVENTS_MAX_LEN = 10_000;

export const QUEUES = {
  /**
   * Mail that protects an account, on its own queue, worker and rate limiter, so that no flood of
   * ordinary mail delays a code or a reset link past its life. Retries fit in the secrets' life (6
   * attempts from 1 s: about a minute of backoff); completed jobs are kept an hour (they name an
   * address), failed ones a day. The welcome stays on `email`: it protects nothing, and registrations
   * (anyone can make many) must not crowd this queue.
   */
  'security-email': {
    options: {
      attempts: 6,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600, count: 10_000 },
    },
    jobs: {
      'verification-code': { 2: VerificationCodeV2 },
      'password-reset': { 2: PasswordResetV2 },
      'email-changed': { 1: EmailChangedV1 },
    },
  },
  email: {
    options: retried(8, 2000),
    jobs: {
      welcome: { 1: WelcomeV1 },
      /** Deprecated here: producers now add it to `security-email`; kept while an older auth may add it. */
      'email-changed': { 1: EmailChangedV1 },
      notification: { 1: NotificationEmailV1 },
      digest: { 1: DigestEmailV1 },
    },
  },
  notifications: {
    options: retried(5, 1000),
    jobs: {
      follow: { 1: FollowV1 },
      favorite: { 1: FavoriteV1 },
      comment: { 1: CommentV1 },
      mention: { 1: MentionV1 },
    },
  },
  /** Scheduled recomputes of content's rankings (a BullMQ Job Scheduler: one job per tick, cluster-wide). */
  rankings: {
    options: {
      attempts: 3,
      backoff: { type: 'exponential', delay: 1000, jitter: 0.5 },
      removeOnComplete: { count: 100 },
      removeOnFail: { age: 7 * 24 * 3600, count: 1000 },
    },
    jobs: {
      recompute: { 1: RecomputeV1 },
    },
  },
  digests: {
    options: retried(5, 5000),
    jobs: {
      run: { 1: DigestRunV1 },
    },
  },
} as const satisfies Record<string, { options: JobsOptions; jobs: Record<string, Record<number, TSchema>> }>;

/** The payload a producer sends today, per queue and job (the current version). */
export interface JobPayloads {
  /** Verification codes, password resets and email-change notices (the secrets are not in the payload). */
  'security-email': {
    'verification-code': Static<typeof VerificationCodeV2>;
    'password-reset': Static<typeof PasswordResetV2>;
    'email-changed': Static<typeof EmailChangedV1>;
  };
  email: {
    welcome: Static<typeof WelcomeV1>;
    'email-changed': Static<typeof EmailChangedV1>;
    notification: Static<typeof NotificationEmailV1>;
    digest: Static<typeof DigestEmailV1>;
  };
  /** Fan-out of in-app, live and email notifications (the notifier processes them). */
  notifications: {
    follow: Static<typeof FollowV1>;
    favorite: Static<typeof FavoriteV1>;
    comment: Static<typeof CommentV1>;
    mention: Static<typeof MentionV1>;
  };
  rankings: {
    recompute: Static<typeof RecomputeV1>;
  };
  /** Digest runs, added by the notifier's job schedulers (daily and weekly). */
  digests: {
    run: Static<typeof DigestRunV1>;
  };
}

export type QueueName = keyof typeof QUEUES;

/**
 * Job versions that no producer may add any more and no worker will run, because their payload carried
 * a secret (email/verification-code and email/password-reset v1 held the code and the reset token). A
 * worker that receives one replaces its data with `{ v, retired: true }` before failing it, so the secret
 * is not kept in the failed set; its owner asks for a new code or link (they live 15 and 30 minutes).
 */
export const RETIRED_VERSIONS: Record<string, Record<string, readonly number[]>> = {
  email: { 'verification-code': [1], 'password-reset': [1] },
};
export type JobName<Q extends QueueName> = keyof JobPayloads[Q] & string;
export type JobPayload<Q extends QueueName, J extends JobName<Q>> = JobPayloads[Q][J];

/** What a handler knows of its job besides the payload. */
export interface JobMeta {
  jobId: string;
  /** 1 on the first attempt. */
  attempt: number;
  /** When the job was due (added, plus its delay; a scheduler's tick): the same on every attempt. */
  scheduledAt: number;
}

/** What a worker for queue Q must provide: one handler per job of the catalog. */
export type Handlers<Q extends QueueName> = {
  [J in JobName<Q>]: (payload: JobPayload<Q, J>, meta: JobMeta) => Promise<void>;
};
