/**
 * The Redis part of deploy/compose/redis-sentinel.yml brought up for real under Podman, as a user runs it
 * (`npm run compose -- -f docker-compose.yml -f deploy/compose/redis-sentinel.yml up …`), with the
 * `redis:7.0` stand-in (deploy/standins/build) where no registry is reachable: both groups' primaries and
 * replicas and the three sentinels, under a project name of its own. The session primary is SIGKILLed;
 * the sentinels promote its replica and, once the old primary's container is started again (with a new
 * address), make it a replica of the new one. The audit user reaches a node from the host as
 * deploy/README.md says. `down -v` leaves nothing behind.
 */
import { join } from 'node:path';
import { repoRoot } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnvFile } from '../../scripts/compose-credentials.ts';
import { runAudit } from '../../scripts/redis-audit.ts';
import { eventually } from './helpers.ts';
import { must, podmanSkipReason, run } from './podman.ts';

const skipReason = podmanSkipReason();
if (skipReason) console.warn(`compose-sentinel.test.ts skipped: ${skipReason}`);

const project = `atollsn${process.pid}`;
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
  const base = { ...process.env };
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
  /** One redis-cli question inside a container, as the admin. */
  const cli = (service: string, args: string[]) =>
    run(
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
    ).stdout.trim();
  const primaryOf = (master: string) =>
    cli('redis-sentinel-1', ['-p', '26379', 'sentinel', 'get-master-addr-by-name', master]).split('\n')[0];
  const role = (service: string) => /^role:(\w+)/m.exec(cli(service, ['info', 'replication']))?.[1];

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

  it('starts both groups, each replica in sync, the sentinels knowing each other by name', async () => {
    for (const master of ['session', 'queue']) {
      const synced = await eventually(
        async () => /master_link_status:up/.test(cli(`redis-${master}-replica`, ['info', 'replication'])),
        60_000,
      );
      expect(synced, `redis-${master}-replica in sync`).toBe(true);
    }
    const known = await eventually(async () => {
      const peers = cli('redis-sentinel-1', ['-p', '26379', 'sentinel', 'sentinels', 'atoll-session']);
      return peers.includes('redis-sentinel-2') && peers.includes('redis-sentinel-3');
    }, 60_000);
    expect(known).toBe(true);
    expect(primaryOf('atoll-session')).toBe('redis-session');
    expect(primaryOf('atoll-queue')).toBe('redis-queue');
  }, 120_000);

  it('promotes the replica when the session primary is SIGKILLed, and takes the old one back as a replica', async () => {
    cli('redis-session', ['set', 'atoll:compose-sentinel', 'kept']);
    expect(cli('redis-session', ['wait', '1', '2000'])).toBe('1');
    podman(['kill', '--signal', 'KILL', container('redis-session')]);
    const killedAt = Date.now();
    // Seconds on a quiet machine; 47 s was seen under the whole suite's load, so up to two minutes.
    const promoted = await eventually(
      async () => primaryOf('atoll-session') === 'redis-session-replica',
      120_000,
    );
    // Should it not happen, what the sentinels said about it.
    const sentinelLog = () =>
      run('podman', ['logs', '--tail', '25', container('redis-sentinel-1')], base).stdout.slice(-3000);
    expect(promoted, `the sentinels name redis-session-replica\n${promoted ? '' : sentinelLog()}`).toBe(true);
    console.log(
      `compose sentinel: replica promoted ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`,
    );
    expect(role('redis-session-replica')).toBe('master');
    expect(cli('redis-session-replica', ['get', 'atoll:compose-sentinel'])).toBe('kept');
    // Started again (a new address), the old primary is made a replica of the new one.
    compose(['start', 'redis-session']);
    // It waits 15 s in its script first (a former primary), then the sentinels demote it.
    const restartedAt = Date.now();
    const demoted = await eventually(async () => role('redis-session') === 'slave', 120_000);
    console.log(
      `compose sentinel: old primary a replica ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after its start`,
    );
    expect(demoted, 'redis-session back as a replica').toBe(true);
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
