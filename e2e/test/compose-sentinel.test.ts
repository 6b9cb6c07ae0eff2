/**
 * The Redis part of deploy/compose/redis-sentinel.yml brought up for real under Podman, as a user runs it
 * (`npm run compose -- -f docker-compose.yml -f deploy/compose/redis-sentinel.yml up …`), with the
 * `redis:7.0` stand-in (deploy/standins/build) where no registry is reachable: both groups' primaries and
 * replicas and the three sentinels, under a project name and a BACKEND_NET of its own. Two failovers,
 * each while other containers start and stop on the host (which makes Podman's DNS server drop queries,
 * deploy/README.md#name-lookups-under-podman): the session primary's process is SIGKILLed (a crash: the
 * restart policy brings its container back, and the sentinels make it a replica of the new primary),
 * then the new primary's container is killed (stopped: it stays down until it is started again). The
 * audit user reaches a node from the host as deploy/README.md says. `down -v` leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnvFile } from '../../scripts/compose-credentials.ts';
import { runAudit } from '../../scripts/redis-audit.ts';
import { eventually } from './helpers.ts';
import { freeBackendNet, must, podmanSkipReason, run } from './podman.ts';

const skipReason = podmanSkipReason();
if (skipReason) console.warn(`compose-sentinel.test.ts skipped: ${skipReason}`);

const project = `atollsn${process.pid}`;
const net = freeBackendNet();
const address = { 'redis-session': `${net}.11`, 'redis-session-replica': `${net}.12` } as const;
const files = ['-f', 'docker-compose.yml', '-f', 'deploy/compose/redis-sentinel.yml'];
const REDIS = [
  'redis-session',
  'redis-session-replica',
  'redis-queue',
  'redis-queue-replica',
  'redis-sentinel-1',
  'redis-sentinel-2',
  'redis-sentinel-3',
];

describe.skipIf(skipReason !== '')('deploy/compose/redis-sentinel.yml under Podman', () => {
  const base: NodeJS.ProcessEnv = { ...process.env, BACKEND_NET: net };
  delete base.DOCKER_HOST;
  let env: NodeJS.ProcessEnv | undefined;
  let credentials: Record<string, string>;
  const container = (service: string) => `${project}_${service}_1`;
  const podman = (args: string[]) => must(run('podman', args, base), `podman ${args.join(' ')}`);
  const compose = (args: string[], timeoutMs?: number) =>
    must(
      run('bash', ['scripts/atoll', 'compose', '-p', project, ...files, ...args], base, timeoutMs),
      args.join(' '),
    );
  /**
   * One redis-cli question inside a container, as the admin. `podman exec` itself can fail for a moment
   * while other containers start and stop (the churn below): asked again, up to five times.
   */
  const cli = (service: string, args: string[]) => {
    let result: ReturnType<typeof run> | undefined;
    for (let attempt = 0; attempt < 5; attempt++) {
      result = run(
        'podman',
        [
          'exec',
          container(service),
          'redis-cli',
          '--user',
          'default',
          '--pass',
          credentials.REDIS_ADMIN_PASSWORD!,
          '--no-auth-warning',
          ...args,
        ],
        base,
      );
      if (result.status === 0) return result.stdout.trim();
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200);
    }
    throw new Error(`podman exec ${service} redis-cli ${args[0]} failed: ${result?.stderr.slice(-500)}`);
  };
  const primaryOf = (master: string) =>
    cli('redis-sentinel-1', ['-p', '26379', 'sentinel', 'get-master-addr-by-name', master]).split('\n')[0];
  const role = (service: string) => /^role:(\w+)/m.exec(cli(service, ['info', 'replication']))?.[1];
  /**
   * Whether a sentinel lists `ip` as a healthy replica of `master` (flags exactly "slave"). Sentinels
   * learn a primary's replicas from its INFO, every 10 s: a primary killed before they have cannot be
   * failed over at all, whatever the replica's own state.
   */
  const knowsReplica = (sentinel: string, master: string, ip: string) => {
    const lines = cli(sentinel, ['-p', '26379', 'sentinel', 'replicas', master]).split('\n');
    const fields = (from: number) => {
      const entry = new Map<string, string>();
      for (let i = from; i + 1 < lines.length && (i === from || lines[i] !== 'name'); i += 2)
        entry.set(lines[i] as string, lines[i + 1] as string);
      return entry;
    };
    return lines.some((line, i) => {
      if (line !== 'name') return false;
      const entry = fields(i);
      return entry.get('ip') === ip && entry.get('flags') === 'slave';
    });
  };

  beforeAll(() => {
    must(run('bash', ['deploy/standins/build'], base, 600_000), 'deploy/standins/build');
    env = base;
    compose(['up', '-d', ...REDIS], 300_000);
    credentials = readEnvFile(join(repoRoot, '.atoll/compose/credentials.env'));
  }, 900_000);

  afterAll(() => {
    if (env)
      run(
        'bash',
        ['scripts/atoll', 'compose', '-p', project, ...files, 'down', '-v', '-t', '5'],
        base,
        120_000,
      );
  }, 180_000);

  it('starts both groups, each replica in sync, the sentinels knowing each other by address', async () => {
    for (const master of ['session', 'queue']) {
      const synced = await eventually(
        async () => /master_link_status:up/.test(cli(`redis-${master}-replica`, ['info', 'replication'])),
        60_000,
      );
      expect(synced, `redis-${master}-replica in sync`).toBe(true);
    }
    const known = await eventually(async () => {
      const peers = cli('redis-sentinel-1', ['-p', '26379', 'sentinel', 'sentinels', 'atoll-session']);
      return peers.includes(`${net}.22`) && peers.includes(`${net}.23`);
    }, 60_000);
    expect(known).toBe(true);
    expect(primaryOf('atoll-session')).toBe(address['redis-session']);
    expect(primaryOf('atoll-queue')).toBe(`${net}.13`);
  }, 120_000);

  /**
   * Containers started and stopped on the project's backend network, one after another, until a stop file
   * appears (or for 5 minutes at most, should the test be cut off first): each start and stop makes
   * Podman's DNS server reload. Stopping lets the `podman run` under way finish: one killed half-way
   * leaves its container's processes behind, holding the network's bridge and so its /24.
   */
  const churn = () => {
    const stopFile = join(tmpdir(), `${project}-churn-stop`);
    rmSync(stopFile, { force: true });
    const child = spawn(
      'bash',
      [
        '-c',
        `end=$((SECONDS + 300)); while [ ! -e ${stopFile} ] && [ $SECONDS -lt $end ]; do podman run --rm --network ${project}_backend --entrypoint true redis:7.0 >/dev/null 2>&1; done`,
      ],
      { env: base, stdio: 'ignore' },
    );
    const exited = new Promise((resolve) => child.once('exit', resolve));
    return {
      stop: async () => {
        writeFileSync(stopFile, '');
        await exited;
        rmSync(stopFile, { force: true });
      },
    };
  };
  /** What the sentinels said, should a failover not happen. */
  const sentinelLog = () =>
    run('podman', ['logs', '--tail', '40', container('redis-sentinel-1')], base).stdout.slice(-4000);

  /** Kills the session primary `from` one way, then waits for `to` to be promoted and `from` demoted. */
  const failover = async (
    from: keyof typeof address,
    to: keyof typeof address,
    kill: () => void,
    restart: () => void,
  ) => {
    expect(primaryOf('atoll-session')).toBe(address[from]);
    const sentinels = ['redis-sentinel-1', 'redis-sentinel-2', 'redis-sentinel-3'];
    const ready = await eventually(
      async () => sentinels.every((s) => knowsReplica(s, 'atoll-session', address[to])),
      60_000,
    );
    expect(ready, `every sentinel lists ${to} as a healthy replica\n${ready ? '' : sentinelLog()}`).toBe(
      true,
    );
    cli(from, ['set', 'atoll:compose-sentinel', `kept by ${from}`]);
    expect(cli(from, ['wait', '1', '2000'])).toBe('1');
    const churning = churn();
    try {
      await new Promise((r) => setTimeout(r, 2000));
      kill();
      const killedAt = Date.now();
      // Seconds on a quiet machine; 47 s was seen under the whole suite's load, so up to two minutes.
      const promoted = await eventually(async () => primaryOf('atoll-session') === address[to], 120_000);
      expect(promoted, `the sentinels name ${to}\n${promoted ? '' : sentinelLog()}`).toBe(true);
      console.log(
        `compose sentinel: ${to} promoted ${((Date.now() - killedAt) / 1000).toFixed(1)} s after ${from} was killed`,
      );
      expect(role(to)).toBe('master');
      expect(cli(to, ['get', 'atoll:compose-sentinel'])).toBe(`kept by ${from}`);
      const promotedAt = Date.now();
      restart();
      // A former primary waits 15 s in its script, starts as a primary, and the sentinels demote it.
      // A replica again, and in sync with the new primary (so that the next write reaches it).
      const demoted = await eventually(
        async () => /master_link_status:up/.test(cli(from, ['info', 'replication'])),
        120_000,
      );
      console.log(
        `compose sentinel: ${from} a replica in sync ${((Date.now() - promotedAt) / 1000).toFixed(1)} s after the promotion`,
      );
      expect(demoted, `${from} back as a replica\n${demoted ? '' : sentinelLog()}`).toBe(true);
    } finally {
      await churning.stop();
    }
  };

  it('promotes the replica when the session primary crashes, and the restart policy brings the old one back as a replica', async () => {
    const pid = Number(podman(['inspect', '-f', '{{.State.Pid}}', container('redis-session')]).trim());
    expect(pid).toBeGreaterThan(1);
    const restarts = () =>
      Number(podman(['inspect', '-f', '{{.RestartCount}}', container('redis-session')]).trim());
    const before = restarts();
    await failover(
      'redis-session',
      'redis-session-replica',
      // SIGKILL to the process itself, as the kernel's OOM killer sends it: not a stop Podman was asked for.
      () => process.kill(pid, 'SIGKILL'),
      () => {},
    );
    expect(restarts()).toBeGreaterThan(before);
  }, 300_000);

  it('promotes again when the new primary’s container is killed, and takes it back once it is started', async () => {
    await failover(
      'redis-session-replica',
      'redis-session',
      () => podman(['kill', '--signal', 'KILL', container('redis-session-replica')]),
      () => compose(['start', 'redis-session-replica']),
    );
  }, 300_000);

  it('lets the audit user reach a node from the host, at its address on the backend network', async () => {
    const id = compose(['ps', '-q', 'redis-queue']).trim();
    const ip = podman([
      'inspect',
      '-f',
      '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
      id,
    ]).trim();
    expect(ip).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const report = await runAudit({
      prefix: 'atoll',
      urls: { queue: `redis://audit:${credentials.REDIS_AUDIT_PASSWORD}@${ip}:6379` },
    });
    expect(report.instances.map((i) => i.role)).toEqual(['queue']);
  }, 60_000);
});
