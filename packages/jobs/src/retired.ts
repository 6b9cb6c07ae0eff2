/**
 * Removes the jobs of retired versions (RETIRED_VERSIONS: payloads that carried a secret) that a queue
 * still keeps from before the upgrade: waiting, delayed, completed (kept a day) or failed (kept a week).
 * Without this, a reset token or code enqueued by an older auth would stay readable in redis-queue until
 * its job's retention ran out. Active jobs are left to the worker, which scrubs them as it fails them.
 *
 * It finds them by their ids, which producers derived from the job name (`verification-code-<...>`,
 * `password-reset-<...>`): SCAN over those keys only, never a read of every job; each one found is
 * removed only if its payload is of a retired version. Safe to run at every start and by several
 * instances at once.
 */

import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import { Queue } from 'bullmq';
import { type QueueName, RETIRED_VERSIONS } from './catalog.ts';

export async function removeRetiredJobs(
  connection: RedisClient,
  keys: Keys,
  queueName: QueueName,
): Promise<number> {
  const retired = RETIRED_VERSIONS[queueName] ?? {};
  const base = `${keys.bullPrefix()}:${queueName}:`;
  const queue = new Queue(queueName, { connection, prefix: keys.bullPrefix() });
  queue.on('error', () => undefined);
  let removed = 0;
  try {
    for (const [name, versions] of Object.entries(retired)) {
      let cursor = '0';
      do {
        const [next, found] = await connection.scan(cursor, 'MATCH', `${base}${name}-*`, 'COUNT', 1000);
        cursor = next;
        // A job's own hash is `<base><id>`; its `:logs`, `:lock` and the like are not jobs.
        for (const id of found.map((key) => key.slice(base.length)).filter((id) => !id.includes(':'))) {
          const job = await queue.getJob(id);
          const version = (job?.data as { v?: unknown } | undefined)?.v;
          if (!job || job.name !== name || typeof version !== 'number' || !versions.includes(version))
            continue;
          if ((await queue.remove(id)) === 1) removed += 1; // 0: active (locked), the worker scrubs it
        }
      } while (cursor !== '0');
    }
  } finally {
    await queue.close();
  }
  return removed;
}
