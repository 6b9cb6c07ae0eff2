/**
 * The notifier's queues in its Prometheus metrics: `notifier_queue_jobs{queue,state}`, read from BullMQ
 * when Prometheus scrapes (one pipeline of counts per queue), beside the request metrics every service
 * has. The same counts as `GET /api/admin/queues`.
 */

import { Gauge, type Registry } from '@atoll/service-kit';
import type { Queue } from 'bullmq';
import { QUEUE_STATES } from './admin/admin.routes.ts';

export function exposeQueueCounts(registry: Registry, queues: Queue[]): void {
  new Gauge({
    name: 'notifier_queue_jobs',
    help: 'Jobs in each BullMQ queue the notifier owns, by state',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const queue of queues) {
        const counts = await queue.getJobCounts(...QUEUE_STATES);
        for (const state of QUEUE_STATES) this.set({ queue: queue.name, state }, counts[state] ?? 0);
      }
    },
  });
}
