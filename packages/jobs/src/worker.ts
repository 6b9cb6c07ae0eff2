/**
 * The worker side of the catalog: a BullMQ Worker for one queue that checks every job against the
 * catalog before its handler sees it. A job whose name or payload the catalog does not accept (unknown
 * job, unknown version, a payload that does not match its schema) goes straight to the failed set with
 * the reason, as an `UnrecoverableError`: retrying cannot fix it. Every other error is retried with the
 * queue's backoff. A job of a retired version (RETIRED_VERSIONS: its payload carried a secret) has its
 * data replaced by `{ v, retired: true }` first, so the failed set keeps no secret.
 */

import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { type Job, UnrecoverableError, Worker, type WorkerOptions } from 'bullmq';
import {
  type Handlers,
  type JobMeta,
  type JobName,
  type JobPayload,
  type QueueName,
  RETIRED_VERSIONS,
} from './catalog.ts';
import { payloadProblem } from './enqueue.ts';

export interface CatalogWorkerOptions {
  /** A worker-mode client of redis-queue (`maxRetriesPerRequest: null`); BullMQ duplicates it as needed. */
  connection: RedisClient;
  keys: Keys;
  concurrency?: number;
  /** At most `max` jobs per `duration` ms across every worker of the queue (e.g. an SMTP provider's). */
  limiter?: { max: number; duration: number };
  /** How long a job's lock lives without renewal: a worker silent longer is taken for dead. */
  lockDurationMs?: number;
  /** How often stalled jobs (whose worker died) are looked for and moved back to waiting. */
  stalledIntervalMs?: number;
  /** Start processing only when `run()` is called (default: at once). */
  autorun?: boolean;
}

/** Checks a received job and hands it to its handler; exported for tests and benchmarks. */
export function dispatcher<Q extends QueueName>(queue: Q, handlers: Handlers<Q>) {
  return async (job: Job): Promise<void> => {
    const version = (job.data as { v?: unknown } | null)?.v;
    if (typeof version === 'number' && RETIRED_VERSIONS[queue]?.[job.name]?.includes(version)) {
      await job.updateData({ v: version, retired: true });
      throw new UnrecoverableError(
        `${queue}/${job.name} v${version} is retired (its payload carried a secret); its data was removed`,
      );
    }
    const problem = payloadProblem(queue, job.name, job.data);
    if (problem) throw new UnrecoverableError(problem);
    const handler = handlers[job.name as JobName<Q>] as (
      payload: JobPayload<Q, JobName<Q>>,
      meta: JobMeta,
    ) => Promise<void>;
    await handler(job.data, {
      jobId: job.id ?? '',
      attempt: job.attemptsMade + 1,
      scheduledAt: job.timestamp + (job.delay ?? 0),
    });
  };
}

export function createWorker<Q extends QueueName>(
  queue: Q,
  handlers: Handlers<Q>,
  opts: CatalogWorkerOptions,
): Worker {
  const options: WorkerOptions = {
    connection: opts.connection,
    prefix: opts.keys.bullPrefix(),
    concurrency: opts.concurrency ?? 10,
    autorun: opts.autorun ?? true,
    ...(opts.limiter ? { limiter: opts.limiter } : {}),
    ...(opts.lockDurationMs ? { lockDuration: opts.lockDurationMs } : {}),
    ...(opts.stalledIntervalMs ? { stalledInterval: opts.stalledIntervalMs } : {}),
  };
  return new Worker(queue, dispatcher(queue, handlers), options);
}
