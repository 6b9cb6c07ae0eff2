/**
 * `pnpm bench --soak`: SOAK_MINUTES (default 10) at half load on the authenticated cached read (through
 * the gateway) and on enqueues of notification jobs (half of what the notifier processes, or of what
 * enqueueing alone reaches if that is less; the jobs still waiting at the end are reported), sampling
 * every 10 s:
 * each service's RSS and V8 heap, and the cache instance's memory against its maxmemory with evictions.
 * The heap that counts is the live heap (`nodejs_heap_live_bytes`: in use right after the last full
 * collection); the heap in use is sampled too, but it swings with the garbage between collections (a
 * busy notifier's between 40 and 180 MiB), so that a growth read from it says nothing. Growth is measured
 * from the end of the warm-up (the first fifth) to the end, each as the lowest of three samples; the
 * target is under 10%. At the end, the key-space
 * audit (`pnpm redis:audit`) of the three instances as the `audit` user: what the soak left in Redis, by
 * family, and any violation.
 */
import { randomUUID } from 'node:crypto';
import { Producer, retentionBounds } from '@atoll/jobs';
import {
  type AuditReport,
  auditKeySpace,
  closeRedis,
  connectRedis,
  formatAuditReport,
  type RoleCheckedRedis,
  violationTotal,
} from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import type { Stack } from '@atoll/testkit/servers';
import { atRate, measure, measureOps } from './lib/load.ts';
import { mib, rss, rssAnon, v8Memory } from './lib/memory.ts';

export interface SoakSample {
  atSeconds: number;
  services: Record<
    string,
    {
      rssMiB: number | null;
      liveHeapMiB: number | null;
      heapUsedMiB: number | null;
      /** What V8 holds for its heap (committed), in use or not. */
      heapHeldMiB?: number | null;
      /** The anonymous pages neither V8's heap nor the external memory it knows of explain (malloc, stacks). */
      otherAnonMiB?: number | null;
    }
  >;
  cache: { usedMiB: number; maxMiB: number; evictedKeys: number };
}

export interface SoakGrowth {
  rssPercent: number | null;
  heapPercent: number | null;
  /** The RSS growth in MiB, and the parts of it in V8's heap (held, not only live) and outside V8. */
  rssMiB?: number | null;
  heapHeldMiB?: number | null;
  otherAnonMiB?: number | null;
}

export interface SoakResult {
  minutes: number;
  readRate: number;
  enqueueRate: number;
  /** Jobs per second enqueued alone (32 at a time), and processed by the notifier through a burst. */
  enqueueMax: number;
  notifierRate: number;
  /** The notifications jobs not yet done when the soak stopped enqueueing. */
  backlogAtEnd: number;
  samples: SoakSample[];
  growth: Record<string, SoakGrowth>;
  cacheStayedUnderMaxmemory: boolean;
  met: boolean;
  /** The key-space audit after the soak, without the lists of biggest keys. */
  audit: {
    durationMs: number;
    violations: number;
    counts: AuditReport['counts'];
    instances: Array<{ role: string; keys: number; truncated: boolean; families: Record<string, number> }>;
  };
}

/** The key-space audit of the stack's three instances, as the `audit` ACL user. */
async function auditStack(stack: Stack, keyPrefix: string): Promise<AuditReport> {
  const clients: Partial<Record<'cache' | 'session' | 'queue', RoleCheckedRedis>> = {};
  try {
    for (const role of ['cache', 'session', 'queue'] as const)
      clients[role] = await connectRedis({
        url: stack.redis[role].urlFor('audit'),
        role,
        use: 'producer',
        name: 'soak:audit',
        log,
        commandTimeoutMs: 10_000,
      });
    return await auditKeySpace({
      prefix: keyPrefix,
      clients,
      lengthBounds: retentionBounds(createKeys(keyPrefix)),
    });
  } finally {
    await Promise.all(Object.values(clients).map(closeRedis));
  }
}

const log = { info() {}, warn() {}, error() {} };

export async function soak(opts: {
  stack: Stack;
  token: string;
  slug: string;
  keyPrefix: string;
  metricsToken: string;
  say: (line: string) => void;
}): Promise<SoakResult> {
  const { stack, say } = opts;
  const minutes = Number(process.env.SOAK_MINUTES ?? 10);
  const target = {
    url: stack.gatewayUrl,
    requests: [{ path: `/api/articles/${opts.slug}`, headers: { authorization: `Token ${opts.token}` } }],
  };
  const readRate = (await measure(target, { seconds: 3, connections: 32, warmupSeconds: 1 })).rps / 2;

  const queue = await connectRedis({
    url: stack.redis.queue.url,
    role: 'queue',
    use: 'producer',
    name: 'soak',
    log,
  });
  const cache = await connectRedis({
    url: stack.redis.cache.url,
    role: 'cache',
    use: 'producer',
    name: 'soak',
    log,
  });
  const producer = new Producer(queue, createKeys(opts.keyPrefix));
  const job = () =>
    producer.enqueue('notifications', 'follow', {
      v: 1,
      actorId: randomUUID(),
      actorUsername: 'soak',
      recipientId: randomUUID(),
      occurredAt: new Date().toISOString(),
    });
  // Half of what the notifier keeps up with, unless enqueueing itself is slower: a rate it cannot keep
  // up with only grows the queue, whose jobs then fill redis-queue and keep the notifier busy long after.
  const enqueueMax = (await measureOps(job, { seconds: 2, concurrency: 32, warmupSeconds: 0.5 })).rps;
  const notifications = producer.queueOf('notifications');
  const backlog = async () =>
    Object.values(await notifications.getJobCounts('wait', 'active', 'delayed', 'prioritized')).reduce(
      (a: number, b) => a + Number(b),
      0,
    );
  // Bounded: a notifier that stopped taking jobs fails the soak instead of holding it forever.
  const drained = async () => {
    const until = Date.now() + 120_000;
    while ((await backlog()) > 0) {
      if (Date.now() > until) throw new Error('soak: the notifications queue was not drained within 120 s');
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  await drained();
  const burst = 3000;
  const burstStart = performance.now();
  for (let i = 0; i < burst; i += 100) await Promise.all(Array.from({ length: 100 }, job));
  await drained();
  const notifierRate = burst / ((performance.now() - burstStart) / 1000);
  const enqueueRate = Math.min(enqueueMax, notifierRate) / 2;
  say(
    `soak: ${minutes} min at ${Math.round(readRate)} reads/s and ${Math.round(enqueueRate)} enqueues/s (enqueues alone ${Math.round(enqueueMax)}/s, the notifier through a burst of ${burst} ${Math.round(notifierRate)} jobs/s)`,
  );

  const samples: SoakSample[] = [];
  const t0 = Date.now();
  const sample = async () => {
    const services: SoakSample['services'] = {};
    for (const [name, proc] of Object.entries(stack.services)) {
      const heap = await v8Memory(proc.url, opts.metricsToken);
      const pid = proc.child.pid;
      const anon = pid ? rssAnon(pid) : null;
      services[name] = {
        rssMiB: pid ? mib(rss(pid)) : null,
        liveHeapMiB: mib(heap.live),
        heapUsedMiB: mib(heap.used),
        heapHeldMiB: mib(heap.total),
        otherAnonMiB:
          anon !== null && heap.total !== null ? mib(anon - heap.total - (heap.external ?? 0)) : null,
      };
    }
    const memory = await cache.info('memory');
    const stats = await cache.info('stats');
    const field = (text: string, name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(text)?.[1] ?? 0);
    samples.push({
      atSeconds: Math.round((Date.now() - t0) / 1000),
      services,
      cache: {
        usedMiB: mib(field(memory, 'used_memory')) ?? 0,
        maxMiB: mib(field(memory, 'maxmemory')) ?? 0,
        evictedKeys: field(stats, 'evicted_keys'),
      },
    });
  };

  // Enqueues at a steady rate in the background, in 10 ms ticks.
  let enqueuing = true;
  const perTick = enqueueRate / 100;
  let owed = 0;
  const ticker = (async () => {
    while (enqueuing) {
      owed += perTick;
      const now = Math.floor(owed);
      owed -= now;
      await Promise.all(Array.from({ length: now }, () => job().catch(() => undefined)));
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  await sample();
  const end = t0 + minutes * 60_000;
  while (Date.now() < end) {
    await atRate(target, readRate, {
      seconds: Math.min(10, Math.max(1, (end - Date.now()) / 1000)),
      connections: 32,
    });
    await sample();
  }
  enqueuing = false;
  await ticker;
  const backlogAtEnd = await backlog();
  await producer.close();
  await closeRedis(queue);
  await closeRedis(cache);

  // Compare the lowest of three samples at the end of the warm-up (the first fifth) with the lowest of
  // the last three.
  const warmEnd = Math.max(3, Math.floor(samples.length / 5));
  const floor = (from: number, to: number, pick: (s: SoakSample) => number | null | undefined) => {
    const values = samples
      .slice(Math.max(0, from), to)
      .map(pick)
      .filter((v): v is number => typeof v === 'number');
    return values.length ? Math.min(...values) : null;
  };
  const growth: SoakResult['growth'] = {};
  const pct = (a: number | null, b: number | null) => (a && b ? Math.round(((b - a) / a) * 1000) / 10 : null);
  const diff = (a: number | null, b: number | null) =>
    a !== null && b !== null ? mib((b - a) * 2 ** 20) : null;
  for (const name of Object.keys(samples[samples.length - 1]?.services ?? {})) {
    type Field = keyof SoakSample['services'][string];
    const at = (field: Field) => {
      const of = (s: SoakSample) => s.services[name]?.[field];
      return [floor(warmEnd - 3, warmEnd, of), floor(samples.length - 3, samples.length, of)] as const;
    };
    growth[name] = {
      rssPercent: pct(...at('rssMiB')),
      heapPercent: pct(...at('liveHeapMiB')),
      rssMiB: diff(...at('rssMiB')),
      heapHeldMiB: diff(...at('heapHeldMiB')),
      otherAnonMiB: diff(...at('otherAnonMiB')),
    };
  }
  const cacheStayedUnderMaxmemory = samples.every(
    (s) => s.cache.maxMiB === 0 || s.cache.usedMiB <= s.cache.maxMiB,
  );
  // A growth that could not be read (no metrics, or no full collection yet by the end of the warm-up)
  // is not a pass.
  const met =
    cacheStayedUnderMaxmemory &&
    Object.values(growth).every(
      (g) => g.rssPercent !== null && g.heapPercent !== null && g.rssPercent < 10 && g.heapPercent < 10,
    );
  for (const [name, g] of Object.entries(growth))
    say(`soak: ${name} RSS ${g.rssPercent ?? 'n/a'}%, heap ${g.heapPercent ?? 'n/a'}% after warm-up`);
  const report = await auditStack(stack, opts.keyPrefix);
  say(`soak: ${formatAuditReport(report).replaceAll('\n', '\nsoak: ')}`);
  const audit = {
    durationMs: report.durationMs,
    violations: violationTotal(report),
    counts: report.counts,
    instances: report.instances.map((i) => ({
      role: i.role,
      keys: i.keys,
      truncated: i.truncated,
      families: Object.fromEntries(i.families.map((f) => [f.family, f.count])),
    })),
  };
  return {
    minutes,
    readRate,
    enqueueRate,
    enqueueMax,
    notifierRate,
    backlogAtEnd,
    samples,
    growth,
    cacheStayedUnderMaxmemory,
    met,
    audit,
  };
}
