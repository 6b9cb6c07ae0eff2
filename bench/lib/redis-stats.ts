/**
 * Redis commands and round trips per request, from the server's own counters: the calls in
 * `INFO commandstats` and `total_reads_processed` in `INFO stats` (one read event per batch of commands
 * a client sends: a round trip). Whatever the server does while idle (a blocked BullMQ worker, a stream
 * consumer's poll) is measured for a second first and subtracted, pro rata.
 */
import type { Redis } from 'ioredis';

export interface RedisCounters {
  at: number;
  commands: number;
  reads: number;
  /** Calls per command name, to say which commands a path sends. */
  byCommand: Record<string, number>;
}

export async function counters(redis: Redis): Promise<RedisCounters> {
  const [stats, commandstats] = await Promise.all([redis.info('stats'), redis.info('commandstats')]);
  let commands = 0;
  const byCommand: Record<string, number> = {};
  for (const m of commandstats.matchAll(/cmdstat_([\w|]+):calls=(\d+)/g)) {
    if (m[1] === 'info') continue;
    commands += Number(m[2]);
    byCommand[m[1] as string] = Number(m[2]);
  }
  const reads = Number(/total_reads_processed:(\d+)/.exec(stats)?.[1] ?? 0);
  return { at: performance.now(), commands, reads, byCommand };
}

export interface PerRequest {
  commands: number;
  roundTrips: number;
  /** Per request, by command name (commands run inside a script are counted as themselves too). */
  byCommand: Record<string, number>;
}

/** Wraps a measured run: the idle rate first (one second), then the run, then per-request figures. */
export async function perRequest<T extends { requests: number }>(
  redis: Redis,
  run: () => Promise<T>,
): Promise<T & { redis: PerRequest }> {
  const idle0 = await counters(redis);
  await new Promise((r) => setTimeout(r, 1000));
  const idle1 = await counters(redis);
  const idleSeconds = (idle1.at - idle0.at) / 1000;
  // Each INFO call is one read and one (excluded) command: two of them per snapshot pair.
  const idleCommands = Math.max(0, (idle1.commands - idle0.commands) / idleSeconds);
  const idleReads = Math.max(0, (idle1.reads - idle0.reads - 2) / idleSeconds);
  const before = await counters(redis);
  const result = await run();
  const after = await counters(redis);
  const seconds = (after.at - before.at) / 1000;
  const n = Math.max(1, result.requests);
  const commands = Math.max(0, after.commands - before.commands - idleCommands * seconds) / n;
  const roundTrips = Math.max(0, after.reads - before.reads - 2 - idleReads * seconds) / n;
  const byCommand: Record<string, number> = {};
  for (const [name, calls] of Object.entries(after.byCommand)) {
    const perRequest = round((calls - (before.byCommand[name] ?? 0)) / n);
    if (perRequest > 0) byCommand[name] = perRequest;
  }
  return { ...result, redis: { commands: round(commands), roundTrips: round(roundTrips), byCommand } };
}

const round = (x: number) => Math.round(x * 100) / 100;
