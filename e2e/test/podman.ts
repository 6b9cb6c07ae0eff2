/**
 * What the tests that run containers under Podman share: why they would be skipped on this machine,
 * running a command to completion, failing with its output, and a backend network of their own.
 */
import { type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { repoRoot } from '@atoll/testkit';

const which = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** Empty where Podman can run here (as root, with docker-compose and debootstrap); else why not. */
export function podmanSkipReason(): string {
  const missing = ['podman', 'docker-compose', 'debootstrap'].filter((cmd) => !which(cmd));
  if (process.getuid?.() !== 0)
    return 'the container tests run Podman as root (npm test installs it from Debian where it can)';
  if (missing.length)
    return `not installed: ${missing.join(', ')} (Debian: apt-get install podman docker-compose debootstrap)`;
  return '';
}

/** `cmd args` from the repository root, to completion (or `timeoutMs`). */
export function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 120_000,
): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
}

/** Its output, or an error with the end of what it printed. */
export function must(result: SpawnSyncReturns<string>, what: string): string {
  if (result.status !== 0) {
    // A null status: it was killed, by spawnSync's timeout (ETIMEDOUT) or a signal, before it ended.
    const how =
      result.status === null
        ? `did not finish (${result.error?.message ?? `killed by ${result.signal}`})`
        : `failed (${result.status})`;
    throw new Error(`${what} ${how}:\n${result.stderr}\n${result.stdout}`.slice(-6000));
  }
  return result.stdout;
}

/**
 * The last number of each data store's and service's fixed address on docker-compose.yml's `backend`
 * network, after BACKEND_NET (default 10.213.89). The Sentinel groups (deploy/compose/redis-sentinel.yml)
 * add .12, .14 and .21 to .23; Compose hands out .128 up to every other container.
 */
export const BACKEND_ADDRESSES: Readonly<Record<string, number>> = {
  postgres: 10,
  'redis-session': 11,
  'redis-queue': 13,
  'redis-cache': 15,
  auth: 31,
  content: 32,
  notifier: 33,
  gateway: 34,
};

/**
 * A BACKEND_NET (the first three numbers of a /24) for a test's own stack, so that it does not meet a
 * stack started with the default one (10.213.89), nor one still on the host (a bridge another run left
 * behind): 10.213.100 to .199, from the process id on, the first with no route on the host.
 */
export function freeBackendNet(): string {
  const routes = spawnSync('ip', ['route'], { encoding: 'utf8' }).stdout ?? '';
  const third =
    Array.from({ length: 100 }, (_, i) => 100 + ((process.pid + i) % 100)).find(
      (n) => !routes.includes(`10.213.${n}.0/24`),
    ) ?? 100 + (process.pid % 100);
  return `10.213.${third}`;
}
