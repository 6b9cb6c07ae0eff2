/**
 * scripts/podman-engine starts two processes that outlive it (Podman's API service and, without systemd,
 * the health-check loop). They must not keep any file descriptor of whoever called it: deploy/standins/build
 * calls it while holding its build lock, and a loop that kept the lock open made every other build (the
 * second container test's) wait until it timed out.
 */
import { readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@atoll/testkit';
import { describe, expect, it } from 'vitest';
import { must, podmanSkipReason, run } from './podman.ts';

const skipReason = podmanSkipReason();
if (skipReason) console.warn(`podman-engine.test.ts skipped: ${skipReason}`);

/** What each open file descriptor of a process points at. */
function openFiles(pid: number): string[] {
  const dir = `/proc/${pid}/fd`;
  return readdirSync(dir).flatMap((fd) => {
    try {
      return [`${fd} -> ${readlinkSync(join(dir, fd))}`];
    } catch {
      return []; // closed meanwhile
    }
  });
}

describe.skipIf(skipReason !== '')('scripts/podman-engine', () => {
  it("leaves none of the caller's file descriptors (a held lock) to the processes it starts", () => {
    const lock = join(repoRoot, '.atoll', `engine-test-${process.pid}.lock`);
    // As deploy/standins/build calls it: with a lock held on fd 9.
    const engine = run(
      'bash',
      ['-c', `mkdir -p .atoll && exec 9>"${lock}" && flock 9 && bash scripts/podman-engine`],
      { ...process.env },
    );
    const socket = must(engine, 'scripts/podman-engine').trim();
    expect(socket).toMatch(/^unix:\/\//);
    // The caller has ended: its lock is free at once, whoever runs in the background.
    expect(run('flock', ['-n', lock, 'true'], { ...process.env }).status).toBe(0);
    rmSync(lock);
    // And neither background process holds anything of the repository (whoever started them).
    // (The container tests run as root: podmanSkipReason.)
    for (const name of ['service.pid', 'health.pid']) {
      let pid: number;
      try {
        pid = Number(readFileSync(join('/run/atoll-podman', name), 'utf8'));
      } catch {
        continue; // no health loop where systemd runs the health checks
      }
      const held = openFiles(pid).filter((f) => f.includes(repoRoot) || f.includes('.atoll/'));
      expect(held, name).toEqual([]);
    }
  });
});
