/**
 * The key-space audit: walks each role's keys under the deployment prefix without blocking the server
 * and checks them against the key map (@atoll/redis-keys `keyFamilies`).
 *
 * How it stays out of the way: SCAN with MATCH `<prefix>:*` and a small COUNT (never KEYS), then one
 * pipeline per SCAN page of TYPE, PTTL and MEMORY USAGE (the server answers other clients between pages),
 * and at most `maxKeys` keys per instance (the report says when it stopped early). MEMORY USAGE samples
 * `memorySamples` nested values (Redis's default 5) rather than all of them (SAMPLES 0): exact sizes of
 * big collections would cost O(members) inside the server, the very stall the audit must not cause; a
 * String's size is exact either way.
 *
 * Violations:
 * - `unknown-key`: a key under the prefix that no definition matches (or one of another instance's
 *   families: the report names it);
 * - `no-ttl`: a key without a TTL whose definition gives it one (every cache and session key, the locks
 *   and caps on the queue instance);
 * - `wrong-type`: a key whose type is not its definition's;
 * - `large-value`: a key over `largeValueBytes`, unless its length has a bound of its own
 *   (`lengthBounds`: BullMQ's completed and failed sets and its events stream, which the queues'
 *   retention bounds) and is within it. Such a key's length (ZCARD, SCARD, LLEN, HLEN or XLEN) is asked
 *   only when it is over `largeValueBytes`;
 * - `cache-near-full`: the cache's used_memory at or above `cacheFullRatio` of its maxmemory.
 * It needs SCAN, TYPE, PTTL, MEMORY USAGE, the length commands and INFO: the `audit` ACL user
 * (@atoll/redis-keys auditRules).
 */
import { familyOf, type KeyFamily, keyFamilies, type RedisRole } from '@atoll/redis-keys';
import { infoFields, isCluster, type RedisClient } from './client.ts';

export interface AuditOptions {
  /** The deployment prefix (REDIS_KEY_PREFIX). */
  prefix: string;
  /** A connection per role to audit (any subset): the `audit` user's, or the admin's. */
  clients: Partial<Record<RedisRole, RedisClient>>;
  /** A key at least this big is a violation (default 512 KiB), unless `lengthBounds` bounds it. */
  largeValueBytes?: number;
  /**
   * The most members, entries or fields a key may hold when its size comes from a bound of its own
   * (e.g. @atoll/jobs `retentionBounds`); undefined for a key without one.
   */
  lengthBounds?: (key: string) => number | undefined;
  /** Keys examined per instance at most (default 100 000); past it the report says `truncated`. */
  maxKeys?: number;
  /** SCAN's COUNT hint: keys per page and per pipeline (default 500). */
  scanCount?: number;
  /** MEMORY USAGE's SAMPLES (default 5; 0 is exact but O(members) for collections). */
  memorySamples?: number;
  /** The cache is near full at this share of maxmemory (default 0.9). */
  cacheFullRatio?: number;
  /** The biggest keys listed per family (default 5). */
  top?: number;
  /** Keys listed per kind of violation and instance (default 20); all are counted. */
  listed?: number;
}

export const AUDIT_DEFAULTS = {
  largeValueBytes: 512 * 1024,
  maxKeys: 100_000,
  scanCount: 500,
  memorySamples: 5,
  cacheFullRatio: 0.9,
  top: 5,
  listed: 20,
} as const;

/** The family name of keys that match no definition. */
export const UNKNOWN_FAMILY = '(unknown)';

export interface FamilyReport {
  family: string;
  count: number;
  memoryBytes: number;
  avgBytes: number;
  /** Remaining TTLs in ms of the keys that have one; null when none has. */
  ttlMs: { min: number; median: number; max: number } | null;
  noTtl: number;
  biggest: Array<{ key: string; bytes: number }>;
}

export interface InstanceReport {
  role: RedisRole;
  /** Keys examined (those that vanished between SCAN and the pipeline are not counted). */
  keys: number;
  /** True when `maxKeys` stopped the scan before the end. */
  truncated: boolean;
  usedMemory: number;
  maxmemory: number;
  families: FamilyReport[];
}

export type ViolationKind = 'unknown-key' | 'no-ttl' | 'wrong-type' | 'large-value' | 'cache-near-full';
export const VIOLATION_KINDS: readonly ViolationKind[] = [
  'unknown-key',
  'no-ttl',
  'wrong-type',
  'large-value',
  'cache-near-full',
];

export interface Violation {
  kind: ViolationKind;
  role: RedisRole;
  /** The key, or null for an instance-wide violation. */
  key: string | null;
  family: string | null;
  detail: string;
}

export interface AuditReport {
  prefix: string;
  durationMs: number;
  instances: InstanceReport[];
  /** Up to `listed` per kind and instance. */
  violations: Violation[];
  /** Every violation, listed or not. */
  counts: Record<ViolationKind, number>;
}

/** Adds one key's figures to a family's running totals. */
class FamilyTally {
  count = 0;
  memoryBytes = 0;
  noTtl = 0;
  readonly ttls: number[] = [];
  readonly biggest: Array<{ key: string; bytes: number }> = [];
  readonly family: string;
  private readonly top: number;
  constructor(family: string, top: number) {
    this.family = family;
    this.top = top;
  }

  add(key: string, ttlMs: number, bytes: number): void {
    this.count += 1;
    this.memoryBytes += bytes;
    if (ttlMs >= 0) this.ttls.push(ttlMs);
    else this.noTtl += 1;
    if (this.biggest.length < this.top || bytes > (this.biggest.at(-1)?.bytes ?? 0)) {
      this.biggest.push({ key, bytes });
      this.biggest.sort((a, b) => b.bytes - a.bytes);
      if (this.biggest.length > this.top) this.biggest.pop();
    }
  }

  report(): FamilyReport {
    const ttls = this.ttls.sort((a, b) => a - b);
    return {
      family: this.family,
      count: this.count,
      memoryBytes: this.memoryBytes,
      avgBytes: this.count === 0 ? 0 : Math.round(this.memoryBytes / this.count),
      ttlMs:
        ttls.length === 0
          ? null
          : {
              min: ttls[0] as number,
              median: ttls[Math.floor((ttls.length - 1) / 2)] as number,
              max: ttls.at(-1) as number,
            },
      noTtl: this.noTtl,
      biggest: [...this.biggest],
    };
  }
}

/** What a key's figures break, given the family it matched (null: none). */
export function checkKey(
  role: RedisRole,
  family: KeyFamily | null,
  key: string,
  figures: { type: string; ttlMs: number; bytes: number; length?: { value: number; bound: number } },
  largeValueBytes: number,
): Omit<Violation, 'role'>[] {
  const found: Omit<Violation, 'role'>[] = [];
  if (!family) {
    found.push({ kind: 'unknown-key', key, family: null, detail: 'matches no definition of the key map' });
  } else if (family.instance !== role) {
    found.push({
      kind: 'unknown-key',
      key,
      family: family.name,
      detail: `a ${family.name} key, which belongs on the ${family.instance} instance`,
    });
  } else {
    if (family.expires && figures.ttlMs === -1) {
      found.push({ kind: 'no-ttl', key, family: family.name, detail: 'its definition gives it a TTL' });
    }
    if (family.redisType !== null && figures.type !== family.redisType) {
      found.push({
        kind: 'wrong-type',
        key,
        family: family.name,
        detail: `a ${figures.type}, defined as a ${family.redisType}`,
      });
    }
  }
  const { length } = figures;
  if (figures.bytes >= largeValueBytes && (!length || length.value > length.bound)) {
    found.push({
      kind: 'large-value',
      key,
      family: family?.name ?? null,
      detail: length
        ? `${figures.bytes} bytes and ${length.value} long, its bound is ${length.bound} long`
        : `${figures.bytes} bytes, the bound is ${largeValueBytes}`,
    });
  }
  return found;
}

/** The command that gives a key's length, by the type TYPE names. */
const LENGTH_COMMAND: Record<string, string> = {
  zset: 'ZCARD',
  set: 'SCARD',
  list: 'LLEN',
  hash: 'HLEN',
  stream: 'XLEN',
};

/**
 * The lengths of a page's keys that are over `largeValueBytes` and have a length bound, in one pipeline
 * (none when no key of the page is both).
 */
async function boundedLengths(
  server: RedisClient,
  keys: readonly string[],
  replies: Array<[Error | null, unknown]>,
  o: { largeValueBytes: number; lengthBounds?: ((key: string) => number | undefined) | undefined },
): Promise<Map<string, { value: number; bound: number }>> {
  const asked: Array<{ key: string; bound: number }> = [];
  const pipeline = server.pipeline();
  keys.forEach((key, i) => {
    const command = LENGTH_COMMAND[String(replies[i * 3]?.[1])];
    const bytes = replies[i * 3 + 2]?.[1];
    if (!command || bytes === null || Number(bytes) < o.largeValueBytes) return;
    const bound = o.lengthBounds?.(key);
    if (bound === undefined) return;
    asked.push({ key, bound });
    pipeline.call(command, key);
  });
  const lengths = new Map<string, { value: number; bound: number }>();
  if (asked.length === 0) return lengths;
  const answers = (await pipeline.exec()) ?? [];
  const error = answers.find(([err]) => err)?.[0];
  if (error) throw error;
  for (const [i, { key, bound }] of asked.entries())
    lengths.set(key, { value: Number(answers[i]?.[1]), bound });
  return lengths;
}

/** Audits each given role in turn. Throws on a connection or permission error (NOPERM). */
export async function auditKeySpace(opts: AuditOptions): Promise<AuditReport> {
  const o = { ...AUDIT_DEFAULTS, ...opts };
  const started = performance.now();
  const families = keyFamilies(o.prefix);
  const counts = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<ViolationKind, number>;
  const violations: Violation[] = [];
  const instances: InstanceReport[] = [];

  for (const role of ['cache', 'session', 'queue'] as const) {
    const client = o.clients[role];
    if (!client) continue;
    const listedHere = Object.fromEntries(VIOLATION_KINDS.map((k) => [k, 0])) as Record<
      ViolationKind,
      number
    >;
    const record = (v: Violation) => {
      counts[v.kind] += 1;
      listedHere[v.kind] += 1;
      if (listedHere[v.kind] <= o.listed) violations.push(v);
    };
    const tallies = new Map<string, FamilyTally>();
    const seen = new Set<string>();
    let truncated = false;
    let usedMemory = 0;
    let maxmemory = 0;
    // A cluster's keys are spread over its primaries: each is scanned, and its memory counted, in turn.
    for (const server of isCluster(client) ? client.nodes('master') : [client]) {
      if (truncated) break;
      let cursor = '0';
      do {
        const [next, page] = await server.scan(cursor, 'MATCH', `${o.prefix}:*`, 'COUNT', o.scanCount);
        cursor = next;
        // SCAN may return a key twice (while the server rehashes): each is examined once.
        const keys = page.filter((k) => !seen.has(k)).slice(0, o.maxKeys - seen.size);
        for (const k of keys) seen.add(k);
        if (keys.length > 0) {
          const pipeline = server.pipeline();
          for (const key of keys) {
            pipeline.type(key);
            pipeline.pttl(key);
            pipeline.call('MEMORY', 'USAGE', key, 'SAMPLES', String(o.memorySamples));
          }
          const replies = (await pipeline.exec()) ?? [];
          const error = replies.find(([err]) => err)?.[0];
          if (error) throw error;
          const lengths = await boundedLengths(server, keys, replies, o);
          keys.forEach((key, i) => {
            const type = String(replies[i * 3]?.[1]);
            const ttlMs = Number(replies[i * 3 + 1]?.[1]);
            const bytes = replies[i * 3 + 2]?.[1];
            // Gone since SCAN named it (expired, evicted, deleted).
            if (type === 'none' || ttlMs === -2 || bytes === null) return;
            const family = familyOf(families, key);
            const name = family && family.instance === role ? family.name : UNKNOWN_FAMILY;
            const tally = tallies.get(name) ?? new FamilyTally(name, o.top);
            tallies.set(name, tally);
            tally.add(key, ttlMs, Number(bytes));
            for (const v of checkKey(
              role,
              family,
              key,
              { type, ttlMs, bytes: Number(bytes), length: lengths.get(key) },
              o.largeValueBytes,
            ))
              record({ ...v, role });
          });
        }
        if (seen.size >= o.maxKeys && cursor !== '0') truncated = true;
      } while (cursor !== '0' && !truncated);

      const info = infoFields(String(await server.call('INFO', 'memory')));
      const serverUsed = Number(info.used_memory ?? 0);
      const serverMax = Number(info.maxmemory ?? 0);
      usedMemory += serverUsed;
      maxmemory += serverMax;
      if (role === 'cache' && serverMax > 0 && serverUsed >= o.cacheFullRatio * serverMax) {
        record({
          kind: 'cache-near-full',
          role,
          key: null,
          family: null,
          detail: `used_memory ${serverUsed} is ${Math.round((serverUsed / serverMax) * 100)}% of maxmemory ${serverMax}`,
        });
      }
    }
    const familyReports = [...tallies.values()].map((t) => t.report());
    familyReports.sort((a, b) => b.memoryBytes - a.memoryBytes || a.family.localeCompare(b.family));
    instances.push({
      role,
      keys: familyReports.reduce((n, f) => n + f.count, 0),
      truncated,
      usedMemory,
      maxmemory,
      families: familyReports,
    });
  }
  return {
    prefix: o.prefix,
    durationMs: Math.round(performance.now() - started),
    instances,
    violations,
    counts,
  };
}

/** The number of violations in a report, listed or not. */
export function violationTotal(report: AuditReport): number {
  return Object.values(report.counts).reduce((a, b) => a + b, 0);
}
