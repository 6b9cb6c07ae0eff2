/**
 * `startRestGc` (rest-gc.ts): a process at rest gives back what its heap grew, once, and a busy one
 * runs no collection. The first test runs real processes: the same growth and rest, with and without it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startRestGc } from '../src/rest-gc.ts';

const MiB = 2 ** 20;
const child = join(import.meta.dirname, 'rest-gc-child.ts');

const rest = async (restGc: 'on' | 'off') => {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--expose-gc', '--max-semi-space-size=4', child],
    {
      env: { ...process.env, NODE_OPTIONS: '', REST_GC: restGc, REST_MS: '2000' },
    },
  );
  return JSON.parse(stdout) as { rested: number; end: number; collections: number };
};

describe('a full collection at rest', () => {
  it('gives back what the heap grew, where a process left alone keeps it', async () => {
    const [withIt, without] = await Promise.all([rest('on'), rest('off')]);
    // Both held the heap they grew when the rest began.
    for (const run of [withIt, without]) expect(run.rested).toBeGreaterThan(200 * MiB);
    expect(without.collections).toBe(0);
    expect(without.end).toBeGreaterThan(without.rested - 32 * MiB);
    expect(withIt.collections).toBe(1);
    expect(withIt.end).toBeLessThan(withIt.rested - 100 * MiB);
  });

  it('runs none while the event loop is busy, one once it rests, and no other until the RSS grows again', async () => {
    let collections = 0;
    let rss = 100 * MiB;
    const stop = startRestGc({
      log: { info: () => {} },
      intervalMs: 100,
      gc: () => collections++,
      rss: () => rss,
    });
    const until = async (ms: number, busy: boolean) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (busy) {
          const slice = Date.now() + 20;
          while (Date.now() < slice) {}
          await new Promise((resolve) => setImmediate(resolve));
        } else {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      }
    };
    try {
      await until(600, true);
      expect(collections).toBe(0);
      await until(400, false);
      expect(collections).toBe(1);
      rss += 16 * MiB; // less than the 24 MiB of growth it waits for
      await until(400, false);
      expect(collections).toBe(1);
      rss += 16 * MiB;
      await until(400, false);
      expect(collections).toBe(2);
    } finally {
      stop();
    }
  });

  it('runs nothing without gc', () => {
    const said: string[] = [];
    const stop = startRestGc({ log: { info: (_obj, msg) => said.push(msg) }, gc: undefined });
    stop();
    expect(said).toEqual(['no collection at rest: Node runs without --expose-gc']);
  });
});
