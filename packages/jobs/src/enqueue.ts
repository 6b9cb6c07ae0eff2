import { type RedisClient, waitForReplicas } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { Queue } from 'bullmq';
import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import { EVENTS_MAX_LEN, type JobName, type JobPayload, QUEUES, type QueueName } from './catalog.ts';

export class InvalidJobPayloadError extends Error {
  constructor(queue: string, job: string, detail: string) {
    super(`invalid ${queue}/${job} payload: ${detail}`);
    this.name = 'InvalidJobPayloadError';
  }
}

/** Checks a payload against the catalog; the reason of the first mismatch, or null when valid. */
export function payloadProblem(queue: QueueName, job: string, payload: unknown): string | null {
  const versions = (QUEUES[queue].jobs as Record<string, Record<number, TSchema>>)[job];
  if (!versions) return `unknown job ${queue}/${job}`;
  const version = (payload as { v?: unknown } | null)?.v;
  const schema = typeof version === 'number' ? versions[version] : undefined;
  if (!schema) return `unknown version ${JSON.stringify(version)} of ${queue}/${job}`;
  if (Value.Check(schema, payload)) return null;
  const first = [...Value.Errors(schema, payload)][0];
  return `${first?.instancePath || '/'} ${first?.message ?? 'is invalid'}`;
}

/**
 * The producer side of the catalog: one BullMQ Queue per catalog queue, on the queue role's producer
 * connection (fail fast: a caller whose enqueue fails answers 503 rather than losing the job), with the
 * hash-tagged prefix from the key schema.
 *
 * On a Sentinel group an enqueue resolves only once a replica has the job (`WAIT 1`, @atoll/redis
 * `waitForReplicas`, on the connection that wrote it): a primary that dies right after answering cannot
 * take an acknowledged job with it. When no replica acknowledges in time the enqueue rejects
 * (`ReplicaAckError`, "unavailable"): the caller answers 503 or its outbox tries again; the job may then
 * be in the queue twice over, which the job id (set by every outbox) makes one.
 */
export class Producer {
  private readonly queues = new Map<QueueName, Queue>();
  private readonly connection: RedisClient;
  private readonly prefix: string;

  constructor(connection: RedisClient, keys: Keys) {
    this.connection = connection;
    this.prefix = keys.bullPrefix();
  }

  private queue(name: QueueName): Queue {
    let queue = this.queues.get(name);
    if (!queue) {
      queue = new Queue(name, {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: QUEUES[name].options,
        streams: { events: { maxLen: EVENTS_MAX_LEN } },
      });
      // The connection's own listener logs an outage once; without this one BullMQ prints every error.
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }

  /**
   * Validates and enqueues. `jobId` makes the enqueue idempotent: BullMQ ignores a second job with the
   * same id while the first is kept. BullMQ refuses ids containing `:` (its key separator).
   */
  async enqueue<Q extends QueueName, J extends JobName<Q>>(
    queue: Q,
    job: J,
    payload: JobPayload<Q, J>,
    opts: { jobId?: string; delayMs?: number } = {},
  ): Promise<string> {
    const problem = payloadProblem(queue, job, payload);
    if (problem) throw new InvalidJobPayloadError(queue, job, problem);
    const added = await this.queue(queue).add(job, payload, {
      ...(opts.jobId ? { jobId: opts.jobId } : {}),
      ...(opts.delayMs ? { delay: opts.delayMs } : {}),
    });
    await waitForReplicas(this.connection);
    return added.id ?? '';
  }

  /**
   * Validates every job, then enqueues them all in one round trip (`addBulk`, a MULTI): for producers
   * of many jobs at once, such as a digest run. Nothing is enqueued if one payload is invalid.
   */
  async enqueueMany<Q extends QueueName, J extends JobName<Q>>(
    queue: Q,
    jobs: Array<{ name: J; payload: JobPayload<Q, J>; jobId?: string }>,
  ): Promise<void> {
    for (const job of jobs) {
      const problem = payloadProblem(queue, job.name, job.payload);
      if (problem) throw new InvalidJobPayloadError(queue, job.name, problem);
    }
    if (jobs.length === 0) return;
    await this.queue(queue).addBulk(
      jobs.map((job) => ({ name: job.name, data: job.payload, opts: job.jobId ? { jobId: job.jobId } : {} })),
    );
    await waitForReplicas(this.connection);
  }

  /** The BullMQ Queue of a catalog queue (counts, the dashboard, job schedulers). */
  queueOf(name: QueueName): Queue {
    return this.queue(name);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
