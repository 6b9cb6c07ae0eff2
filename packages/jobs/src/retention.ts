/**
 * How long BullMQ's bounded keys of each catalog queue may get, for the key-space audit (@atoll/redis
 * `auditKeySpace`, its `lengthBounds`). Under a steady load these keys are over the audit's byte bound
 * and still where the catalog keeps them: after a ten-minute soak, the notifications queue's completed
 * set held 10,000 job ids (941 KiB) and its events stream 10,000 events (558 KiB).
 *
 * - A queue's completed and failed sets hold at most its retention's `count` (`removeOnComplete`,
 *   `removeOnFail`); `true` keeps none, and a retention by age alone has no bound here.
 * - Its events stream holds EVENTS_MAX_LEN entries, and up to one stream node more: BullMQ trims with
 *   `MAXLEN ~`, which drops whole nodes only (`stream-node-max-entries`: Redis's default of 100,
 *   which the deploy/redis configs leave as it is).
 *
 * Any other key, a backlog's wait list included, has no length bound: the audit's byte bound applies.
 */
import type { Keys } from '@atoll/redis-keys';
import type { KeepJobs } from 'bullmq';
import { EVENTS_MAX_LEN, QUEUES } from './catalog.ts';

/** The entries one stream node holds at most (Redis's `stream-node-max-entries` default). */
export const STREAM_NODE_ENTRIES = 100;

/** The most jobs a retention keeps; undefined when only their age bounds it (or nothing does). */
function keptAtMost(retention: boolean | number | KeepJobs | undefined): number | undefined {
  if (retention === true) return 0;
  if (typeof retention === 'number') return retention;
  if (typeof retention === 'object') return retention.count;
  return undefined;
}

/** The length bound of each bounded BullMQ key under `keys`'s prefix, by key. */
export function retentionBounds(keys: Keys): (key: string) => number | undefined {
  const bounds = new Map<string, number>();
  for (const [queue, { options }] of Object.entries(QUEUES)) {
    const base = `${keys.bullPrefix()}:${queue}:`;
    const completed = keptAtMost(options.removeOnComplete);
    const failed = keptAtMost(options.removeOnFail);
    if (completed !== undefined) bounds.set(`${base}completed`, completed);
    if (failed !== undefined) bounds.set(`${base}failed`, failed);
    bounds.set(`${base}events`, EVENTS_MAX_LEN + STREAM_NODE_ENTRIES);
  }
  return (key) => bounds.get(key);
}
