/**
 * The Node options and the environment of the services are written three times, for the three ways a
 * service is started: SERVICE_NODE_OPTIONS and SERVICE_ENV (tests, `npm start`, the bench), the
 * container image's ENV, and each app's `start` script. They must say the same, and a started service
 * must run with them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, SERVICE_ENV, SERVICE_NODE_OPTIONS, ServiceProcess } from '../src/index.ts';

const assignments = Object.entries(SERVICE_ENV)
  .map(([name, value]) => `${name}=${value}`)
  .join(' ');

describe('the services’ Node options', () => {
  it('are the same in the container image, the start scripts and the test kit', () => {
    const dockerfile = readFileSync(join(repoRoot, 'deploy/docker/service.Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`ENV NODE_OPTIONS="${SERVICE_NODE_OPTIONS}"\n`);
    expect(dockerfile).toContain(`ENV ${assignments}\n`);
    for (const app of ['gateway', 'auth', 'content', 'notifier']) {
      const pkg = JSON.parse(readFileSync(join(repoRoot, 'apps', app, 'package.json'), 'utf8'));
      expect(pkg.scripts.start, app).toBe(`${assignments} node ${SERVICE_NODE_OPTIONS} dist/main.js`);
    }
  });

  it('reach the process, bound its young generation and expose gc; options from the environment come after them', async () => {
    const run = async (env: Record<string, string>, nodeOptions?: string) => {
      const proc = ServiceProcess.spawn('gateway', env, {
        entry: '../../packages/testkit/test/print-exec-options.ts',
        // '' stands for Node's defaults: no options, no environment of the services'.
        ...(nodeOptions === undefined ? {} : { nodeOptions, serviceEnv: {} }),
      });
      await proc.exited;
      return JSON.parse(proc.stdout.trim()) as {
        nodeOptions: string;
        youngMiB: number;
        gc: string;
        malloc: Record<string, string>;
      };
    };
    const bounded = await run({});
    expect(bounded.nodeOptions).toBe(SERVICE_NODE_OPTIONS);
    expect(bounded.malloc).toEqual(SERVICE_ENV);
    // The full collection a service runs at rest (@atoll/service-kit startRestGc).
    expect(bounded.gc).toBe('function');
    // Two semi-spaces of at most 4 MiB: 8 MiB (the median; the largest sample was 8.75–12.75 MiB here,
    // and 26 once in a CI run on a loaded machine). Twice the semi-spaces still tells it from the default.
    expect(bounded.youngMiB).toBeLessThanOrEqual(16);
    // Node's default lets it grow far beyond (median 64 MiB, largest 128, measured on Node 24).
    const unbounded = await run({}, '');
    expect(unbounded.nodeOptions).toBe('');
    expect(unbounded.gc).toBe('undefined');
    expect(unbounded.malloc).toEqual({});
    expect(unbounded.youngMiB).toBeGreaterThan(32);
    const overridden = await run({ NODE_OPTIONS: '--max-semi-space-size=16' });
    expect(overridden.nodeOptions).toBe(`${SERVICE_NODE_OPTIONS} --max-semi-space-size=16`);
    expect(overridden.youngMiB).toBeGreaterThan(bounded.youngMiB);
    // So does the environment given to a service.
    expect((await run({ MALLOC_ARENA_MAX: '4' })).malloc.MALLOC_ARENA_MAX).toBe('4');
  });
});
