/**
 * deploy/redis/sentinel-node.sh and deploy/redis/sentinel.sh, the scripts that docker compose
 * (deploy/compose/redis-sentinel.yml) and Kubernetes (deploy/k8s/components/redis-sentinel) run a Sentinel
 * group with, run natively here: real redis-server processes on free ports, each node and sentinel in a
 * folder of its own as its container would have, with the ACL files scripts/compose-credentials.ts makes.
 * Then what a deployment relies on: a service and the audit user find and use the primary through the
 * sentinels, the primary is SIGKILLed and started again at once by its script as a supervisor would, the
 * replica is promoted with the acknowledged write and the old primary comes back as its replica, and a
 * sentinel started again remembers the new primary.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { closeRedis, connectRedis, type RoleCheckedRedis, waitForReplicas } from '@atoll/redis';
import {
  freePort,
  ONE_SHOT,
  oneShot,
  ownedTempDir,
  redisConf,
  removeOwnedDir,
  repoRoot,
  spawnUntilReady,
} from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { composeCredentials, redisPasswordVar } from '../../scripts/compose-credentials.ts';
import { runAudit } from '../../scripts/redis-audit.ts';

const CREDENTIALS = composeCredentials({});
const password = (user: Parameters<typeof redisPasswordVar>[0]) =>
  CREDENTIALS.env[redisPasswordVar(user)] as string;
const MASTER = 'atoll-session';
const silent = { info() {}, warn() {}, error() {} };

/** One process of the group, started by its script with the environment its container gets. */
class Scripted {
  child: ChildProcess | undefined;
  output = () => '';
  readonly script: string;
  readonly port: number;
  readonly env: Record<string, string>;

  constructor(script: string, port: number, env: Record<string, string>) {
    this.script = script;
    this.port = port;
    this.env = env;
  }

  async start(ready: RegExp): Promise<void> {
    const started = await spawnUntilReady(
      this.script,
      'sh',
      [join(repoRoot, 'deploy/redis', this.script)],
      ready,
      { PATH: process.env.PATH ?? '/usr/bin:/bin', ...this.env },
    );
    this.child = started.child;
    this.output = started.output;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One question to one server as the admin, on a connection that tries once. */
const ask = <T>(port: number, question: (c: Redis) => Promise<T>): Promise<T> =>
  oneShot(
    new Redis({ port, host: '127.0.0.1', username: 'default', password: password('admin'), ...ONE_SHOT }),
    question,
  );

const replication = async (port: number) => {
  const info = await ask(port, (c) => c.info('replication'));
  return Object.fromEntries(
    info
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
};
const primaryPort = async (sentinelPort: number) =>
  Number(
    (
      (await ask(sentinelPort, (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER))) as [
        string,
        string,
      ]
    )[1],
  );

describe('the Sentinel scripts of compose and Kubernetes, run natively', () => {
  let dir: string;
  const nodes: Scripted[] = [];
  const sentinels: Scripted[] = [];
  const sentinelUrl = (user: string, pw: string) =>
    `redis+sentinel://${user}:${pw}@${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${MASTER}`;

  beforeAll(async () => {
    dir = await ownedTempDir('sentinel-scripts');
    // What each container mounts read-only at /usr/local/etc/redis.
    const etc = join(dir, 'etc');
    mkdirSync(etc);
    copyFileSync(redisConf('session'), join(etc, 'session.conf'));
    writeFileSync(join(etc, 'users.acl'), CREDENTIALS.acl['session-sentinel']);
    writeFileSync(join(etc, 'sentinel-users.acl'), CREDENTIALS.acl.sentinel);
    const common = { REDIS_ETC: etc, REDIS_BIND: '127.0.0.1' };
    const first = await freePort();
    for (const port of [first, await freePort()]) {
      const data = join(dir, `node-${port}`);
      mkdirSync(data);
      nodes.push(
        new Scripted('sentinel-node.sh', port, {
          ...common,
          REDIS_DATA: data,
          REDIS_PORT: String(port),
          REDIS_ROLE: 'session',
          REDIS_ANNOUNCE: '127.0.0.1',
          REDIS_FIRST_PRIMARY: `127.0.0.1:${first}`,
          REDIS_REPLICA_PASSWORD: password('replica'),
          // Above the sentinels' down-after (1 s here) plus a failover, with room for one more try after a
          // split vote (twice the failover timeout) on a busy machine: with 5 s, a CI run saw the old
          // primary come back before any failover and stay the primary.
          REDIS_PRIMARY_RESTART_DELAY_S: '15',
        }),
      );
    }
    for (const node of nodes) await node.start(/Ready to accept connections/);
    // A full sync waits for the diskless-sync delay (5 s by default) first.
    await until('the replica to sync', async () =>
      (await replication(nodes[1]!.port)).master_link_status === 'up' ? true : undefined,
    );
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const data = join(dir, `sentinel-${port}`);
      mkdirSync(data);
      sentinels.push(
        new Scripted('sentinel.sh', port, {
          ...common,
          REDIS_DATA: data,
          SENTINEL_PORT: String(port),
          SENTINEL_ANNOUNCE: '127.0.0.1',
          SENTINEL_MASTERS: `${MASTER}=127.0.0.1:${first}`,
          REDIS_SENTINEL_PASSWORD: password('sentinel'),
          SENTINEL_DOWN_AFTER_MS: '1000',
          SENTINEL_FAILOVER_TIMEOUT_MS: '5000',
        }),
      );
    }
    for (const s of sentinels) await s.start(/\+monitor master/);
    await until('the sentinels to find the replica and each other', async () => {
      for (const s of sentinels) {
        const replicas = (await ask(s.port, (c) => c.call('SENTINEL', 'REPLICAS', MASTER))) as unknown[];
        const peers = (await ask(s.port, (c) => c.call('SENTINEL', 'SENTINELS', MASTER))) as unknown[];
        if (replicas.length < 1 || peers.length < 2) return undefined;
      }
      return true;
    });
  }, 60_000);

  afterAll(async () => {
    if (process.env.DEBUG_SCRIPTS) for (const p of [...nodes, ...sentinels]) console.log(p.port, p.output());
    for (const s of sentinels) await s.stop();
    for (const n of nodes) await n.stop();
    if (dir) removeOwnedDir(dir);
  });

  let gateway: RoleCheckedRedis | undefined;
  afterAll(async () => {
    if (gateway) await closeRedis(gateway);
  });

  it('runs the role file unchanged on every node, with the replication user from the ACL file', async () => {
    const [primary, replica] = nodes as [Scripted, Scripted];
    expect((await replication(primary.port)).role).toBe('master');
    const info = await replication(replica.port);
    expect(info.role).toBe('slave');
    expect(info.master_link_status).toBe('up');
    for (const node of nodes) {
      const policy = await ask(node.port, (c) => c.config('GET', 'maxmemory-policy'));
      expect(policy).toEqual(['maxmemory-policy', 'noeviction']);
      expect(await ask(node.port, (c) => c.config('GET', 'masteruser'))).toEqual(['masteruser', 'replica']);
    }
  });

  it('lets a service and the audit find the primary through the sentinels with their own users', async () => {
    gateway = await connectRedis({
      url: sentinelUrl('gateway', password('gateway')),
      role: 'session',
      use: 'producer',
      name: 'gateway:session',
      log: silent,
    });
    // A write the gateway may make, acknowledged by the replica (as a sign-in is).
    await gateway.set('atoll:sess:{scripts}', 'kept', 'EX', 600);
    await waitForReplicas(gateway);
    const report = await runAudit({
      prefix: 'atoll',
      urls: { session: sentinelUrl('audit', password('audit')) },
    });
    // The audit user reached the primary (the one key is there) and, for the role check, the replica.
    expect(report.instances.map((i) => [i.role, i.keys])).toEqual([['session', 1]]);
    // A service user asks where the primary is, and may not change the group.
    const asGateway = new Redis({
      port: sentinels[0]!.port,
      host: '127.0.0.1',
      username: 'gateway',
      password: password('gateway'),
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    try {
      await asGateway.connect();
      expect(await asGateway.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER)).toEqual([
        '127.0.0.1',
        String(nodes[0]!.port),
      ]);
      await expect(asGateway.call('SENTINEL', 'FAILOVER', MASTER)).rejects.toThrow(/NOPERM/);
    } finally {
      asGateway.disconnect();
    }
  });

  it('keeps the acknowledged write when the primary is SIGKILLed and restarted at once', async () => {
    const [old, replica] = nodes as [Scripted, Scripted];
    // As a supervisor does (Compose's restart policy, the kubelet): the script starts again at once. The
    // write is in no snapshot; had the old primary come back before the sentinels saw it down, it would
    // be the primary without it, and the replica would drop it too.
    await old.stop('SIGKILL');
    const restarted = old.start(/Ready to accept connections/);
    await until('the sentinels to name the replica', async () =>
      (await primaryPort(sentinels[0]!.port)) === replica.port ? true : undefined,
    );
    await restarted;
    // The gateway's client follows the sentinels to the new primary, which has the write.
    const value = await until(
      'the gateway to read from the new primary',
      async () => (await gateway!.get('atoll:sess:{scripts}')) ?? undefined,
    );
    expect(value).toBe('kept');
    const info = await until('the old primary to replicate the new one', async () => {
      const now = await replication(old.port);
      return now.role === 'slave' && now.master_link_status === 'up' ? now : undefined;
    });
    expect(Number(info.master_port)).toBe(replica.port);
    expect((await replication(replica.port)).role).toBe('master');
  }, 90_000);

  it('restarts a sentinel that remembers the new primary', async () => {
    const sentinel = sentinels[0]!;
    await sentinel.stop();
    await sentinel.start(/\+monitor master/);
    expect(await primaryPort(sentinel.port)).toBe(nodes[1]!.port);
  }, 30_000);
});
