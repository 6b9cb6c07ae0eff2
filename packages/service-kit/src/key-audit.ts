/**
 * The key-space audit (@atoll/redis `auditKeySpace`, `pnpm redis:audit`) in a service's `/metrics`: every
 * `intervalMs` the service audits the instances it is given, as the `audit` ACL user (the service's own
 * users may not SCAN or MEMORY USAGE), and the gauges show the last result. Prometheus's scrape reads
 * numbers already there, never Redis: a scrape costs nothing and cannot stall, and the audit's own cost
 * (SCAN pages and pipelines, at most `maxKeys` keys per instance) is paid once per interval, whatever
 * the number of scrapers. One run at a time; a failed run is logged and leaves the gauges as they were,
 * with `redis_audit_last_success_timestamp_seconds` showing their age.
 *
 * Off unless a service registers it (the notifier does, with REDIS_AUDIT_INTERVAL_MS > 0): one service
 * audits for the deployment; every instance of it audits, which is harmless (reads only) but redundant.
 */

import {
  type AuditOptions,
  type AuditReport,
  auditKeySpace,
  closeRedis,
  createRedisClient,
  type RedisClient,
  VIOLATION_KINDS,
} from '@atoll/redis';
import type { RedisRole } from '@atoll/redis-keys';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { Gauge } from 'prom-client';

export interface KeyAuditOptions extends Omit<AuditOptions, 'clients'> {
  /** The `audit` user's URL per instance to audit. */
  urls: Partial<Record<RedisRole, string>>;
  intervalMs: number;
  /** The first run, after start (default: a tenth of the interval, at most 30 s). */
  firstRunMs?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The key-space audit's last report (null until the first run succeeds), and a run now. */
    keyAudit: { last(): AuditReport | null; run(): Promise<AuditReport | null> };
  }
}

const keyAuditPlugin: FastifyPluginAsync<KeyAuditOptions> = async (app, opts) => {
  const { urls, intervalMs, firstRunMs, ...auditOptions } = opts;
  const registry = app.metrics.registry;
  const clients: Partial<Record<RedisRole, RedisClient>> = {};
  // Connected at the first run: an instance that is away then is a failed run, not a failed boot.
  for (const [role, url] of Object.entries(urls) as Array<[RedisRole, string]>)
    clients[role] = createRedisClient({
      url,
      role,
      use: 'producer',
      name: `audit:${role}`,
      log: app.log,
      commandTimeoutMs: 10_000,
    });

  let last: AuditReport | null = null;
  let lastSuccess = 0;
  let running: Promise<AuditReport | null> | null = null;

  new Gauge({
    name: 'redis_audit_keys',
    help: 'Keys per RedisClient instance and key family at the last key-space audit ((unknown): no definition)',
    labelNames: ['role', 'family'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const inst of last?.instances ?? [])
        for (const f of inst.families) this.set({ role: inst.role, family: f.family }, f.count);
    },
  });
  new Gauge({
    name: 'redis_audit_memory_bytes',
    help: 'Memory (MEMORY USAGE, sampled) per RedisClient instance and key family at the last key-space audit',
    labelNames: ['role', 'family'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const inst of last?.instances ?? [])
        for (const f of inst.families) this.set({ role: inst.role, family: f.family }, f.memoryBytes);
    },
  });
  new Gauge({
    name: 'redis_audit_violations',
    help: 'Violations found by the last key-space audit, by kind (see pnpm redis:audit)',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      if (!last) return;
      for (const kind of VIOLATION_KINDS) this.set({ kind }, last.counts[kind]);
    },
  });
  new Gauge({
    name: 'redis_audit_truncated',
    help: '1 when the last key-space audit of an instance stopped at its key cap',
    labelNames: ['role'] as const,
    registers: [registry],
    collect() {
      for (const inst of last?.instances ?? []) this.set({ role: inst.role }, inst.truncated ? 1 : 0);
    },
  });
  new Gauge({
    name: 'redis_audit_last_success_timestamp_seconds',
    help: 'When the last key-space audit succeeded (0: never)',
    registers: [registry],
    collect() {
      this.set(lastSuccess / 1000);
    },
  });

  const run = (): Promise<AuditReport | null> => {
    running ??= (async () => {
      try {
        for (const client of Object.values(clients)) if (client.status === 'wait') await client.connect();
        const report = await auditKeySpace({ ...auditOptions, clients });
        last = report;
        lastSuccess = Date.now();
        return report;
      } catch (err) {
        app.log.warn({ err: { message: (err as Error).message } }, 'redis key-space audit failed');
        return null;
      } finally {
        running = null;
      }
    })();
    return running;
  };
  app.decorate('keyAudit', { last: () => last, run });

  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const schedule = (ms: number) => {
    if (closed) return;
    timer = setTimeout(() => {
      void run().finally(() => schedule(intervalMs));
    }, ms);
    timer.unref();
  };
  app.addHook('onReady', async () => {
    schedule(firstRunMs ?? Math.min(intervalMs / 10, 30_000));
  });
  app.addHook('onClose', async () => {
    closed = true;
    clearTimeout(timer);
    await running;
    await Promise.all(Object.values(clients).map((c) => closeRedis(c)));
  });
};

export const keyAudit = fp(keyAuditPlugin, { name: '@atoll/key-audit', dependencies: ['@atoll/metrics'] });
