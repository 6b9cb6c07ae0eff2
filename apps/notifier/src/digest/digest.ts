/**
 * Digest runs. A BullMQ job scheduler adds a `digests/run` job per period (daily, weekly; cron in
 * UTC, see `scheduleDigests`). A run mails every user whose digest comes at that period what is unread
 * and was not in their last digest, for the notification types they get by digest, and every
 * notification whose instant email was held back by a mail cap (`email_deferred`). Only to a verified
 * address, and only lines whose actor is trusted when the run reads them (notifications/mail-rules.ts).
 *
 * A run holds the lock `digest-<period>` (@atoll/lock) for its whole length, so two runs of one period
 * never overlap (a run retried from the dashboard, or taken for stalled while its first worker still
 * runs): the second finds the lock busy and ends. Its writes are fenced: moving users' "last digest"
 * mark forward first checks the run's fencing token, so a run that lost its lock unnoticed (paused past
 * its lease) cannot move the marks of the run that took over.
 *
 * A run is safe to repeat: its window ends at the job's scheduled time (the same on every attempt),
 * and each digest email's job id names user, period and window, so a repeated run enqueues nothing new.
 */
import type { Handlers, JobPayloads, Producer } from '@atoll/jobs';
import { advanceFence, type LockClient } from '@atoll/lock';
import type { Queue } from 'bullmq';
import { type Kysely, sql } from 'kysely';
import type { NotifierDatabase } from '../db.ts';
import { mailableRecipient, trustedActor } from '../notifications/mail-rules.ts';
import { DEFAULT_PREFERENCES } from '../preferences/preferences.repository.ts';
import { fixCronLocale } from './cron-locale.ts';

type Period = 'daily' | 'weekly';
type DigestItem = JobPayloads['email']['digest']['items'][number];

const BATCH = 500;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MAX_ITEMS = 50;

/**
 * Sets the digest schedulers up, and returns what stops trying. First it gives cron-parser a locale
 * (cron-locale.ts). BullMQ can refuse an upsert
 * ("Cannot create job scheduler iteration - job ID already exists") when the job it would create is
 * already there in a state it cannot replace: seen when two notifiers started together on a short
 * period. That is no reason for a notifier not to serve: the refusal is logged, and the upsert tried again
 * every `retryMs` until it is accepted. Any other error (Redis out of reach, a permission the queue user
 * lacks) still stops the notifier from starting.
 */
export async function keepDigestsScheduled(
  queue: Queue,
  cron: Record<Period, string>,
  log: { warn(obj: object, msg: string): void },
  retryMs = 5_000,
): Promise<() => void> {
  const notFixed = fixCronLocale();
  if (notFixed) log.warn({ reason: notFixed }, 'cron-parser keeps the system locale (more memory)');
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // At start a refusal is retried and any other error thrown; once started, every error is retried.
  const attempt = async (atStart: boolean): Promise<void> => {
    try {
      await scheduleDigests(queue, cron);
    } catch (err) {
      if (stopped) return;
      if (atStart && !isSchedulerCollision(err)) throw err;
      log.warn({ err: { message: (err as Error).message } }, 'digest schedulers not set up, trying again');
      timer = setTimeout(() => void attempt(false), retryMs);
      timer.unref();
    }
  };
  await attempt(true);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** BullMQ's SchedulerJobIdCollision: the job the scheduler's next run would create is already there. */
const isSchedulerCollision = (err: unknown) => (err as { code?: unknown } | null)?.code === -10;

export function scheduleDigests(queue: Queue, cron: Record<Period, string>): Promise<unknown> {
  return Promise.all(
    (['daily', 'weekly'] as const).map((period) =>
      queue.upsertJobScheduler(
        `digest-${period}`,
        { pattern: cron[period], tz: 'UTC' },
        { name: 'run', data: { v: 1, period } },
      ),
    ),
  );
}

export function digestHandlers(deps: {
  db: Kysely<NotifierDatabase>;
  producer: Producer;
  locks: LockClient;
  log: { info(obj: object, msg: string): void };
  /** NOTIFY_MAIL_MIN_ACCOUNT_AGE_MS: lines of younger (or unverified) actors are left out. */
  minActorAgeMs: number;
}): Handlers<'digests'> {
  return {
    run: async ({ period }, meta) => {
      const result = await deps.locks.withLock(`digest-${period}`, { ttlMs: 30_000 }, async (lease) => {
        let mailed = 0;
        for (let afterUser = ''; ; ) {
          if (lease.signal.aborted) throw new Error(`digest ${period}: lock lost, stopping`);
          const batch = await runBatch(deps, period, new Date(meta.scheduledAt), afterUser, lease.fence);
          mailed += batch.mailed;
          if (!batch.lastUser) return mailed;
          afterUser = batch.lastUser;
        }
      });
      deps.log.info(
        {
          period,
          ...(result.acquired ? { mailed: result.value } : { skipped: 'another run holds the lock' }),
        },
        'digest run',
      );
    },
  };
}

/** One batch of users (by id, after `afterUser`): enqueue their digests, then move their marks. */
async function runBatch(
  deps: { db: Kysely<NotifierDatabase>; producer: Producer; minActorAgeMs: number },
  period: Period,
  windowEnd: Date,
  afterUser: string,
  fence: number,
): Promise<{ mailed: number; lastUser: string | null }> {
  const { db, producer } = deps;
  const mark = period === 'daily' ? 'last_daily_digest_at' : 'last_weekly_digest_at';
  const users = await db
    .selectFrom('recipients as r')
    .leftJoin('preferences as p', 'p.user_id', 'r.user_id')
    .select(['r.user_id', 'r.username', 'r.email', 'r.email_verified', 'p.email as prefs'])
    .where(sql<string>`coalesce(p.digest, ${DEFAULT_PREFERENCES.digest})`, '=', period)
    .$if(afterUser !== '', (q) => q.where('r.user_id', '>', afterUser))
    .orderBy('r.user_id')
    .limit(BATCH)
    .execute();
  if (users.length === 0) return { mailed: 0, lastUser: null };
  const rows = await db
    .selectFrom('notifications as n')
    .innerJoin('recipients as r', 'r.user_id', 'n.recipient_id')
    .select(['n.recipient_id', 'n.type', 'n.payload', 'n.email_deferred'])
    .where(
      'n.recipient_id',
      'in',
      users.map((u) => u.user_id),
    )
    .where('n.read_at', 'is', null)
    .where('n.created_at', '<=', windowEnd)
    .where(sql<boolean>`n.created_at > coalesce(${sql.ref(`r.${mark}`)}, '-infinity')`)
    .orderBy('n.id', 'desc')
    .execute();
  // The actors' standing now: only a trusted actor's lines are mailed (mail-rules.ts), the others are
  // in-app only. Judged at the run, so a line from an actor who has since become trusted is mailed.
  // (An id that is no UUID names no account: not trusted, and never sent to the uuid column.)
  const actorIds = [...new Set(rows.map((row) => String(row.payload.actorId)))].filter((id) => UUID.test(id));
  const actors = new Map(
    actorIds.length === 0
      ? []
      : (
          await db
            .selectFrom('recipients')
            .select(['user_id', 'email_verified', 'registered_at'])
            .where('user_id', 'in', actorIds)
            .execute()
        ).map((a) => [a.user_id, { emailVerified: a.email_verified, registeredAt: a.registered_at }]),
  );
  const byUser = new Map<string, Array<{ item: DigestItem; deferred: boolean }>>();
  for (const row of rows) {
    const p = row.payload as Record<string, string | null | undefined>;
    if (!trustedActor(actors.get(String(p.actorId)), deps.minActorAgeMs, windowEnd)) continue;
    const list = byUser.get(row.recipient_id) ?? [];
    list.push({
      item: {
        type: row.type,
        actorUsername: p.actorUsername as string,
        articleSlug: p.articleSlug ?? null,
        articleTitle: p.articleTitle ?? null,
        excerpt: p.excerpt ?? null,
      },
      deferred: row.email_deferred,
    });
    byUser.set(row.recipient_id, list);
  }
  const jobs = users.flatMap((user) => {
    // An unverified address gets no digest; its mark moves all the same, so verifying later does not
    // bring every older line at once (they are in-app).
    if (!mailableRecipient({ emailVerified: user.email_verified })) return [];
    const prefs = { ...DEFAULT_PREFERENCES.email, ...user.prefs };
    const items = (byUser.get(user.user_id) ?? [])
      .filter((i) => i.deferred || prefs[i.item.type] === 'digest')
      .map((i) => i.item);
    if (items.length === 0) return [];
    return [
      {
        name: 'digest' as const,
        jobId: `digest-${period}-${user.user_id}-${windowEnd.getTime()}`,
        payload: {
          v: 1 as const,
          userId: user.user_id,
          to: user.email,
          username: user.username,
          period,
          items: items.slice(0, MAX_ITEMS),
          total: items.length,
        },
      },
    ];
  });
  await producer.enqueueMany('email', jobs);
  await db.transaction().execute(async (trx) => {
    if (!(await advanceFence(trx, `digest-${period}`, fence))) {
      throw new Error(`digest ${period}: a later run has written (fence ${fence} is stale), stopping`);
    }
    await trx
      .updateTable('recipients')
      // Never backwards: an older run retried late must not make a newer digest's lines come again.
      .set({ [mark]: sql`greatest(coalesce(${sql.ref(mark)}, ${windowEnd}), ${windowEnd})` })
      .where(
        'user_id',
        'in',
        users.map((u) => u.user_id),
      )
      .execute();
  });
  return { mailed: jobs.length, lastUser: users.length < BATCH ? null : (users.at(-1)?.user_id ?? null) };
}
