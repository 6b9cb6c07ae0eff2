import type { RedisRole } from '@atoll/redis-keys';

/** The live settings of a server that decide whether it can serve a role. */
export interface ServerSettings {
  maxmemory: number;
  maxmemoryPolicy: string;
  appendonly: boolean;
  /**
   * `appendfsync` and the RDB `save` schedule (empty when snapshots are off), when known. INFO, all a
   * service's Redis user may read, has neither (only CONFIG GET has, which no service user may run): the
   * services leave them out and these checks are skipped; the role files set both (their test reads them).
   */
  appendfsync?: string;
  save?: string;
}

export interface RoleProblem {
  setting: string;
  actual: string;
  expected: string;
  why: string;
}

const CONF = (role: RedisRole) => `deploy/redis/${role}.conf`;

/**
 * What each role needs, as in design.md. Only settings that break the role are problems; the rest of the
 * role files (sample counts, lazy freeing) are tuning.
 */
export function checkRole(role: RedisRole, s: ServerSettings): RoleProblem[] {
  const problems: RoleProblem[] = [];
  if (role === 'cache') {
    if (s.maxmemory <= 0) {
      problems.push({
        setting: 'maxmemory',
        actual: '0 (unbounded)',
        expected: 'a limit, e.g. 256mb',
        why: 'a cache without a memory bound grows until the machine runs out',
      });
    }
    if (s.maxmemoryPolicy !== 'allkeys-lru' && s.maxmemoryPolicy !== 'allkeys-lfu') {
      problems.push({
        setting: 'maxmemory-policy',
        actual: s.maxmemoryPolicy,
        expected: 'allkeys-lru',
        why: 'a full cache must evict old entries, not refuse writes',
      });
    }
  } else {
    if (s.maxmemoryPolicy !== 'noeviction') {
      problems.push({
        setting: 'maxmemory-policy',
        actual: s.maxmemoryPolicy,
        expected: 'noeviction',
        why:
          role === 'queue'
            ? 'BullMQ loses jobs when the server evicts keys'
            : 'evicting a session logs its user out at random',
      });
    }
    if (role === 'queue' && !s.appendonly) {
      problems.push({
        setting: 'appendonly',
        actual: 'no',
        expected: 'yes',
        why: 'without the append-only file a restart loses every job enqueued since the last snapshot',
      });
    }
    if (role === 'queue' && s.appendonly && s.appendfsync === 'no') {
      problems.push({
        setting: 'appendfsync',
        actual: 'no',
        expected: 'everysec',
        why: 'the append-only file must reach the disk at least every second',
      });
    }
    if (role === 'session' && s.save !== undefined && s.save.trim() === '' && !s.appendonly) {
      problems.push({
        setting: 'save',
        actual: '"" (no snapshots)',
        expected: 'an RDB schedule, e.g. "3600 1 300 100 60 10000"',
        why: 'a restart without persistence logs everyone out',
      });
    }
  }
  return problems;
}

export class RedisRoleError extends Error {
  readonly problems: RoleProblem[];
  constructor(role: RedisRole, address: string, problems: RoleProblem[]) {
    const details = problems
      .map((p) => `${p.setting} is ${p.actual}, must be ${p.expected} (${p.why})`)
      .join('; ');
    const fixes = problems.map((p) => `${p.setting} ${p.expected.split(',')[0]}`).join(', ');
    super(
      `redis-${role} at ${address} is not configured for the ${role} role: ${details}. ` +
        `Fix: start it with ${CONF(role)}, or set ${fixes}.`,
    );
    this.name = 'RedisRoleError';
    this.problems = problems;
  }
}
