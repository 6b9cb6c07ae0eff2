/**
 * The benchmark harness in smoke mode (three rounds of 0.4 s per side, 4 connections), so that it cannot rot: every
 * comparison of bench/targets.ts runs against the real stack and its references, and the results are
 * written as JSON, Markdown and SVG. No speed is asserted here (speed is claimed only from a full
 * `pnpm bench` run); what is checked is that each comparison ran its rounds, that every HTTP answer was
 * a 2xx of the expected size, and that every comparison got a verdict consistent with its figures.
 * (bench-machinery.test.ts checks the counting and the verdicts themselves on servers made to fail.)
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ownedTempDir, removeOwnedDir, repoRoot } from '@atoll/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import type { Judged } from '../../bench/lib/verdict.ts';
import { COMPARISONS } from '../../bench/targets.ts';

const run = promisify(execFile);

describe('pnpm bench --smoke', () => {
  let out = '';
  afterAll(() => {
    if (out) removeOwnedDir(out);
  });

  it('runs every path and its reference, and writes the results', async () => {
    out = await ownedTempDir('bench-smoke');
    // From the sources: a build would add half a minute to every test run, and the harness is the same
    // either way (the containers test runs the compiled services).
    await run(
      process.execPath,
      ['--conditions=atoll-source', 'bench/run.ts', '--smoke', '--source', '--out', out],
      {
        cwd: repoRoot,
        // About three minutes on a busy 2-core machine: 20 comparisons × 6 runs, and the stack.
        timeout: 480_000,
        maxBuffer: 16 * 1024 * 1024,
      },
    );
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
    const names = report.rows.map((r: { name: string }) => r.name);
    for (const expected of [
      ...COMPARISONS.flatMap((c) => [c.path, c.reference]),
      'redis-benchmark GET',
      'redis-benchmark INCR (pipelined ×16)',
      'BullMQ addBulk ×100 (raw), in jobs',
    ])
      expect(names).toContain(expected);
    for (const row of report.rows) {
      // Good answers over all rounds: a slow write may complete none in one 0.4 s round on a busy machine.
      expect(row.requests, row.name).toBeGreaterThan(0);
      expect(row.errors, row.name).toBe(0);
      if (row.unit === 'req/s') expect(row.rejected, row.name).toEqual({ status: 0, size: 0, failed: 0 });
    }
    // Each comparison: three rounds, a median within its spread, a verdict that follows from them.
    expect(report.comparisons).toHaveLength(COMPARISONS.length);
    for (const c of report.comparisons as Judged[]) {
      const what = `${c.path} vs ${c.reference}`;
      expect(c.ratios, what).toHaveLength(3);
      expect(c.ratio.min, what).toBeLessThanOrEqual(c.ratio.median);
      expect(c.ratio.median, what).toBeLessThanOrEqual(c.ratio.max);
      const suspect = (report.comparisons as Judged[]).some(
        (o) => o.path === c.path && o.upperBound !== undefined && o.ratio.median > o.upperBound,
      );
      if (suspect) expect(c.verdict, what).toBe('suspect');
      else if (c.target === undefined) expect(c.verdict, what).toBe('shown');
      else expect(c.verdict, what).toBe(c.ratio.median >= c.target ? 'met' : 'not met');
    }
    expect(report.sse.streams).toBe(50);
    expect(report.sse.allDelivered.p50).toBeGreaterThan(0);
    // Redis figures come from the server's counters: an L1 hit sends nothing to redis-cache.
    const l1 = report.rows.find((r: { name: string }) => r.name === 'content: L1 hit');
    expect(l1.redis.instance).toBe('cache');
    // Per request, beside what redis-cache runs while idle; the message names what it ran (by command).
    expect(l1.redis.commands, JSON.stringify(l1.redis.byCommand)).toBeLessThanOrEqual(0.01);
    expect(report.checks.length).toBeGreaterThanOrEqual(8);
    for (const service of ['gateway', 'auth', 'content', 'notifier']) {
      expect(report.memory[service].peakRssMiB).toBeGreaterThan(10);
      // Idle: read from the running process, never above its own peak.
      for (const idle of [report.idle.afterStart[service], report.idle.afterRun[service]]) {
        expect(idle, service).toBeGreaterThan(10);
        expect(idle, service).toBeLessThanOrEqual(report.memory[service].peakRssMiB);
      }
    }
    // The stack with the pages its services share counted once: below the sum of their RSS, which counts
    // the Node binary's pages once per service, and above any one service.
    const rssSums = ['afterStart', 'afterRun'].map((when) =>
      ['gateway', 'auth', 'content', 'notifier'].reduce((sum, s) => sum + report.idle[when][s], 0),
    );
    const sharedOnce = [report.idle.afterStartSharedOnceMiB, report.idle.afterRunSharedOnceMiB];
    for (const [i, once] of sharedOnce.entries()) {
      expect(once).toBeLessThan((rssSums[i] as number) - 60);
      const when = i === 0 ? 'afterStart' : 'afterRun';
      expect(once).toBeGreaterThan(Math.max(...Object.values(report.idle[when] as Record<string, number>)));
    }
    // What each service holds at rest: V8's heap read from its metrics, within its anonymous pages,
    // and the live part within what V8 holds. The live part is known only once the service has run a
    // full collection (null before: seen for the gateway and the notifier 15 s after start), and some
    // service has by the end of the run.
    const live: number[] = [];
    for (const when of ['afterStartDetail', 'afterRunDetail'])
      for (const service of ['gateway', 'auth', 'content', 'notifier']) {
        const d = report.idle[when][service];
        expect(d.heapTotalMiB, `${when} ${service}`).toBeGreaterThan(5);
        if (d.heapLiveMiB !== null) {
          expect(d.heapLiveMiB, `${when} ${service}`).toBeLessThanOrEqual(d.heapTotalMiB);
          if (when === 'afterRunDetail') live.push(d.heapLiveMiB);
        }
        expect(d.codeMiB, `${when} ${service}`).toBeGreaterThan(0);
        expect(d.anonMiB, `${when} ${service}`).toBeGreaterThan(d.heapTotalMiB);
        expect(d.otherAnonMiB, `${when} ${service}`).toBeCloseTo(
          d.anonMiB - d.heapTotalMiB - d.externalMiB,
          0,
        );
      }
    expect(live.length).toBeGreaterThan(0);
    expect(readFileSync(join(out, 'latest.md'), 'utf8')).toContain('| service | when | anonymous | file |');
    const idleChecks = report.checks.filter((c: { what: string }) => c.what.includes('idle'));
    expect(idleChecks.map((c: { bound: number }) => c.bound)).toEqual([400, 400]);
    expect(readFileSync(join(out, 'latest.md'), 'utf8')).toContain(
      '| path | reference | target | bound | median | spread (min–max) |',
    );
    expect(existsSync(join(out, 'latest.svg'))).toBe(true);
  }, 540_000);

  it('--passwords: login and sign-up, Argon2id and the old scrypt, idle and under flood, and writes them', async () => {
    const dir = await ownedTempDir('bench-passwords');
    try {
      await run(
        process.execPath,
        ['--conditions=atoll-source', 'bench/run.ts', '--passwords', '--smoke', '--out', dir],
        // The scrypt flood alone took seven minutes on a 2-core machine shared at a load average of 20.
        { cwd: repoRoot, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
      );
      const report = JSON.parse(readFileSync(join(dir, 'passwords.json'), 'utf8'));
      const rows = report.rows as Array<{
        hashing: string;
        operation: string;
        load: string;
        requests: number;
        refused: Record<string, number>;
      }>;
      expect(rows.map((r) => `${r.hashing.split(' ')[0]} ${r.operation} ${r.load}`).sort()).toEqual(
        [
          'Argon2id login idle',
          'Argon2id login under flood',
          'Argon2id sign-up idle',
          'Argon2id sign-up under flood',
          'scrypt login idle',
          'scrypt login under flood',
          'scrypt sign-up idle',
          'scrypt sign-up under flood',
        ].sort(),
      );
      for (const r of rows) expect(r.requests, `${r.hashing} ${r.operation} ${r.load}`).toBeGreaterThan(0);
      for (const r of rows.filter((x) => x.load === 'idle')) expect(r.refused).toEqual({});
      expect(readFileSync(join(dir, 'passwords.md'), 'utf8')).toContain('| hashing | operation | load |');
    } finally {
      removeOwnedDir(dir);
    }
  }, 660_000);
});
