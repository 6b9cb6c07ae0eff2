/**
 * The benchmark harness in smoke mode (about a second per path), so that it cannot rot: every path runs
 * against the real stack and its references, and the results are written as JSON, Markdown and SVG.
 * No speed is asserted here (speed is claimed only from a full `pnpm bench` run); what is checked is that
 * each path ran, answered without errors, and that the targets were evaluated.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ownedTempDir, removeOwnedDir, repoRoot } from '@atoll/testkit';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('pnpm bench --smoke', () => {
  let out = '';
  afterAll(() => {
    if (out) removeOwnedDir(out);
  });

  it('runs every path and its reference, and writes the results', async () => {
    out = await ownedTempDir('bench-smoke');
    await run(process.execPath, ['--conditions=atoll-source', 'bench/run.ts', '--smoke', '--out', out], {
      cwd: repoRoot,
      timeout: 300_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const report = JSON.parse(readFileSync(join(out, 'latest.json'), 'utf8'));
    const names = report.rows.map((r: { name: string }) => r.name);
    for (const expected of [
      'node:http hello-world',
      'Fastify hello-world',
      'Fastify proxy → Fastify hello-world',
      'redis-benchmark GET',
      'redis-benchmark INCR (pipelined ×16)',
      'gateway: anonymous cached read',
      'gateway: authenticated cached read',
      'gateway: proxied pass-through (GET /api/tags)',
      'content: L1 hit',
      'content: L2 hit',
      'content: uncached',
      'gateway: create article',
      'session resolution alone',
      'identity assertion: HMAC-SHA256 sign + verify',
      'identity assertion: Ed25519 sign + verify',
      'enqueue through the jobs contract',
      'BullMQ addBulk ×100 (raw), in jobs',
      'raw BullMQ no-op worker (concurrency 16)',
      'notifier processing (concurrency 16)',
    ])
      expect(names).toContain(expected);
    for (const row of report.rows) {
      expect(row.rps, row.name).toBeGreaterThan(0);
      expect(row.errors, row.name).toBe(0);
    }
    // Redis figures come from the server's counters: an L1 hit sends nothing to redis-cache.
    const l1 = report.rows.find((r: { name: string }) => r.name === 'content: L1 hit');
    expect(l1.redis.instance).toBe('cache');
    expect(l1.redis.commands).toBeLessThanOrEqual(0.01);
    expect(report.targets.length).toBeGreaterThanOrEqual(8);
    for (const service of ['gateway', 'auth', 'content', 'notifier'])
      expect(report.memory[service].peakRssMiB).toBeGreaterThan(10);
    expect(readFileSync(join(out, 'latest.md'), 'utf8')).toContain('| target | measured | met |');
    expect(existsSync(join(out, 'latest.svg'))).toBe(true);
  }, 360_000);

  it('--passwords: login and sign-up, Argon2id and the old scrypt, idle and under flood, and writes them', async () => {
    const dir = await ownedTempDir('bench-passwords');
    try {
      await run(
        process.execPath,
        ['--conditions=atoll-source', 'bench/run.ts', '--passwords', '--smoke', '--out', dir],
        { cwd: repoRoot, timeout: 300_000, maxBuffer: 16 * 1024 * 1024 },
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
  }, 360_000);
});
