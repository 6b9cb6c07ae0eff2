/**
 * The key-space audit against real redis-server processes (the deploy/redis role files, the generated
 * ACL users): each violation seeded and reported, a clean key space counted exactly, a large scan that
 * keeps the server answering, and the `audit` user's permissions.
 */
import { createKeys, type RedisRole } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuditReport,
  auditKeySpace,
  formatAuditReport,
  UNKNOWN_FAMILY,
  violationTotal,
} from '../src/index.ts';

const PREFIX = 'aud1';
const ROLES = ['cache', 'session', 'queue'] as const;
const keys = createKeys(PREFIX);
const DAY = 86_400;

describe('key-space audit on real servers', () => {
  const servers = {} as Record<RedisRole, RedisServer>;
  const admins = {} as Record<RedisRole, Redis>;
  const audits = {} as Record<RedisRole, Redis>;
  beforeAll(async () => {
    await Promise.all(
      ROLES.map(async (role) => {
        servers[role] = await RedisServer.start(role, { keyPrefix: PREFIX });
        admins[role] = new Redis(servers[role].url);
        audits[role] = new Redis(servers[role].urlFor('audit'));
      }),
    );
  });
  afterEach(async () => {
    await Promise.all(ROLES.map((role) => admins[role].flushall()));
  });
  afterAll(async () => {
    for (const role of ROLES) {
      audits[role]?.disconnect();
      admins[role]?.disconnect();
      await servers[role]?.dispose();
    }
  });

  const audit = (opts: Partial<Parameters<typeof auditKeySpace>[0]> = {}) =>
    auditKeySpace({ prefix: PREFIX, clients: audits, ...opts });
  const family = (report: AuditReport, role: RedisRole, name: string) =>
    report.instances.find((i) => i.role === role)?.families.find((f) => f.family === name);

  /** A key space as the services leave it: every family with its type and TTL. */
  async function seedClean() {
    const { cache, session, queue } = admins;
    await session.hset(keys.session('h1'), 'userId', '1');
    await session.expire(keys.session('h1'), 3600);
    await session.hset(keys.session('h2'), 'userId', '2');
    await session.expire(keys.session('h2'), 7200);
    await session.sadd(keys.userSessions('1'), 'h1');
    await session.expire(keys.userSessions('1'), 30 * DAY);
    await session.set(keys.rateLimit('anonymous', '2001:db8::/64'), '3', 'PX', 60_000);
    await session.set(keys.oauthState('s'), '{}', 'EX', 600);
    for (let i = 0; i < 5; i++)
      await cache.set(keys.cacheEntry('article', `a${i}`), 'x'.repeat(100 * (i + 1)), 'EX', 300);
    await cache.sadd(keys.cacheTag('article:a1'), keys.cacheEntry('article', 'a1'));
    await cache.expire(keys.cacheTag('article:a1'), 300);
    await cache.zadd(keys.ranking('trending'), 1, 'a1');
    await cache.expire(keys.ranking('trending'), 600);
    await cache.sadd(keys.favoritesOf('1'), '');
    await cache.expire(keys.favoritesOf('1'), 3600);
    await queue.xadd(keys.userEvents(), '*', 'type', 'user.created');
    await queue.set(keys.lockFence('digest'), '4');
    await queue.set(keys.lock('digest'), 'token', 'PX', 30_000);
    await queue.hset(`${keys.bullPrefix()}:email:1`, 'name', 'welcome');
    await queue.lpush(`${keys.bullPrefix()}:email:wait`, '1');
    await queue.set(`${keys.bullPrefix()}:email:id`, '1');
    await queue.hset(`${keys.bullPrefix()}:rankings:meta`, 'opts.maxLenEvents', '10000');
  }

  it('counts a clean key space by family, with memory and TTL spread, and finds nothing wrong', async () => {
    await seedClean();
    const report = await audit();
    expect(report.counts).toEqual({
      'unknown-key': 0,
      'no-ttl': 0,
      'wrong-type': 0,
      'large-value': 0,
      'cache-near-full': 0,
    });
    expect(report.violations).toEqual([]);
    expect(report.instances.map((i) => [i.role, i.keys, i.truncated])).toEqual([
      ['cache', 8, false],
      ['session', 5, false],
      ['queue', 7, false],
    ]);
    const entries = family(report, 'cache', 'cacheEntry');
    expect(entries).toMatchObject({ count: 5, noTtl: 0 });
    expect(entries?.biggest.map((b) => b.key)).toEqual(
      [4, 3, 2, 1, 0].map((i) => keys.cacheEntry('article', `a${i}`)),
    );
    expect(entries?.memoryBytes).toBe(entries?.biggest.reduce((n, b) => n + b.bytes, 0));
    const sessions = family(report, 'session', 'session');
    expect(sessions?.count).toBe(2);
    expect(sessions?.ttlMs?.min).toBeGreaterThan(3_500_000);
    expect(sessions?.ttlMs?.max).toBeLessThanOrEqual(7_200_000);
    expect(sessions?.ttlMs?.max).toBeGreaterThan(7_100_000);
    expect(family(report, 'queue', 'queue:email')).toMatchObject({ count: 3, noTtl: 3 });
    expect(family(report, 'queue', 'queue:rankings')).toMatchObject({ count: 1 });
    expect(family(report, 'queue', 'lockFence')).toMatchObject({ count: 1, noTtl: 1, ttlMs: null });
    expect(report.instances[0]?.maxmemory).toBe(256 * 1024 * 1024);
    const text = formatAuditReport(report);
    expect(text).toMatch(/redis-cache: 8 keys/);
    expect(text).toMatch(/^ {2}cacheEntry +5 /m);
    expect(text).toMatch(/no violations$/);
  });

  it('holds a key with a length bound to that bound instead of the byte bound, as the audit user', async () => {
    const { queue } = admins;
    const bull = (suffix: string) => `${keys.bullPrefix()}:email:${suffix}`;
    const seed = queue.pipeline();
    for (let i = 0; i < 200; i++) {
      seed.zadd(bull('completed'), i, `job-${i}-${'x'.repeat(40)}`);
      seed.xadd(bull('events'), '*', 'event', 'completed', 'jobId', `job-${i}-${'x'.repeat(40)}`);
      seed.rpush(bull('wait'), `job-${i}-${'x'.repeat(40)}`);
      seed.rpush(bull('paused'), `job-${i}-${'x'.repeat(40)}`);
    }
    await seed.exec();
    // completed at its bound, wait under it, events over it, paused without one.
    const bounds = new Map([
      [bull('completed'), 200],
      [bull('wait'), 1000],
      [bull('events'), 150],
    ]);
    const report = await audit({ largeValueBytes: 4096, lengthBounds: (key) => bounds.get(key) });
    const large = report.violations.filter((v) => v.kind === 'large-value');
    expect(large.map((v) => v.key).sort()).toEqual([bull('events'), bull('paused')].sort());
    expect(large.find((v) => v.key === bull('events'))?.detail).toMatch(
      / and 200 long, its bound is 150 long$/,
    );
    expect(large.find((v) => v.key === bull('paused'))?.detail).toMatch(/ bytes, the bound is 4096$/);
    // Without the bounds, all four are large values.
    expect((await audit({ largeValueBytes: 4096 })).counts['large-value']).toBe(4);
  });

  it('reports each violation: unknown keys, missing TTLs, wrong types, large values', async () => {
    await seedClean();
    const { cache, session, queue } = admins;
    await cache.set(`${PREFIX}:stray`, '1', 'EX', 60);
    await queue.set(`${keys.bullPrefix()}:retired-queue:1`, '1');
    await cache.set(keys.session('misplaced'), '1', 'EX', 60);
    await cache.set(keys.cacheEntry('article', 'forever'), '{}');
    await session.sadd(keys.userSessions('2'), 'h2');
    await session.set(keys.loginFailures('account', 'x'), '1');
    await cache.set(keys.favoritesOf('2'), 'not a set', 'EX', 60);
    await cache.set(keys.cacheEntry('feed', 'huge'), 'x'.repeat(600 * 1024), 'EX', 60);
    // Another deployment's keys on the same server are not this audit's business.
    await cache.set('other:stray', '1');

    const report = await audit();
    const found = report.violations.map((v) => [v.kind, v.role, v.key, v.family]);
    expect(found).toEqual(
      expect.arrayContaining([
        ['unknown-key', 'cache', `${PREFIX}:stray`, null],
        ['unknown-key', 'queue', `${keys.bullPrefix()}:retired-queue:1`, null],
        ['unknown-key', 'cache', keys.session('misplaced'), 'session'],
        ['no-ttl', 'cache', keys.cacheEntry('article', 'forever'), 'cacheEntry'],
        ['no-ttl', 'session', keys.userSessions('2'), 'userSessions'],
        ['no-ttl', 'session', keys.loginFailures('account', 'x'), 'loginFailures'],
        ['wrong-type', 'cache', keys.favoritesOf('2'), 'favoritesOf'],
        ['large-value', 'cache', keys.cacheEntry('feed', 'huge'), 'cacheEntry'],
      ]),
    );
    expect(report.counts).toEqual({
      'unknown-key': 3,
      'no-ttl': 3,
      'wrong-type': 1,
      'large-value': 1,
      'cache-near-full': 0,
    });
    expect(found).toHaveLength(8);
    expect(family(report, 'cache', UNKNOWN_FAMILY)?.count).toBe(2);
    expect(report.violations.find((v) => v.key === keys.session('misplaced'))?.detail).toMatch(
      /belongs on the session instance/,
    );
    // The bound is the caller's.
    const strict = await audit({ largeValueBytes: 1024 });
    expect(strict.counts['large-value']).toBeGreaterThan(1);
    const text = formatAuditReport(report);
    expect(text).toMatch(/8 violations: unknown-key 3, no-ttl 3, wrong-type 1, large-value 1/);
    expect(text).toContain(`[no-ttl] redis-session ${keys.userSessions('2')} (userSessions)`);
  });

  it('reports a cache near its maxmemory', async () => {
    await admins.cache.set(keys.cacheEntry('article', 'a'), 'x'.repeat(200_000), 'EX', 60);
    const used = Number(/used_memory:(\d+)/.exec(await admins.cache.info('memory'))?.[1]);
    // About 95% full, below the bound, so nothing is evicted meanwhile.
    await admins.cache.config('SET', 'maxmemory', String(Math.ceil(used / 0.95)));
    try {
      const report = await audit({ clients: { cache: audits.cache } });
      expect(report.counts['cache-near-full']).toBe(1);
      expect(report.violations).toEqual([
        expect.objectContaining({ kind: 'cache-near-full', role: 'cache', key: null }),
      ]);
      expect(violationTotal(report)).toBe(1);
    } finally {
      await admins.cache.config('SET', 'maxmemory', '256mb');
    }
  });

  it('scans 20 000 keys in pages while the server keeps answering, and stops at the key cap', async () => {
    const total = 20_000;
    for (let start = 0; start < total; start += 1000) {
      const pipeline = admins.cache.pipeline();
      for (let i = start; i < start + 1000; i++)
        pipeline.set(keys.cacheEntry('n', String(i)), 'v', 'EX', 600);
      await pipeline.exec();
    }
    // A separate connection pings throughout: the audit's pages leave room for it.
    const pinger = new Redis(servers.cache.url);
    let done = false;
    const latencies: number[] = [];
    const pinging = (async () => {
      while (!done) {
        const t = performance.now();
        await pinger.ping();
        latencies.push(performance.now() - t);
      }
    })();
    const report = await audit({ clients: { cache: audits.cache } });
    done = true;
    await pinging;
    pinger.disconnect();
    latencies.sort((a, b) => a - b);
    const max = latencies.at(-1) ?? 0;
    // Measured, not asserted: timings depend on the machine.
    console.info(
      `audit of ${total} keys: ${report.durationMs} ms; ${latencies.length} concurrent PINGs, max ${max.toFixed(1)} ms`,
    );
    expect(family(report, 'cache', 'cacheEntry')?.count).toBe(total);
    expect(report.instances[0]?.truncated).toBe(false);
    expect(violationTotal(report)).toBe(0);
    expect(latencies.length).toBeGreaterThan(1);

    const capped = await audit({ clients: { cache: audits.cache }, maxKeys: 1200 });
    expect(capped.instances[0]).toMatchObject({ keys: 1200, truncated: true });
    expect(formatAuditReport(capped)).toMatch(/scan stopped at the key cap/);
  });

  it('runs as the audit user, which may list and size keys but not read, write or administer', async () => {
    const can = async (line: string[]) =>
      (await admins.session.call('ACL', 'DRYRUN', 'audit', ...line).catch((e: Error) => e.message)) === 'OK';
    const key = keys.session('h');
    for (const line of [
      ['scan', '0', 'MATCH', `${PREFIX}:*`, 'COUNT', '500'],
      ['type', key],
      ['pttl', key],
      ['memory', 'usage', key, 'SAMPLES', '5'],
      ['info', 'memory'],
    ])
      expect(await can(line), line.join(' ')).toBe(true);
    for (const line of [
      ['hgetall', key],
      ['get', key],
      ['set', key, 'x'],
      ['del', key],
      ['eval', 'return 1', '0'],
      ['keys', '*'],
      ['config', 'get', 'maxmemory'],
      ['flushall'],
      ['type', 'other:x'],
    ])
      expect(await can(line), line.join(' ')).toBe(false);
  });
});
