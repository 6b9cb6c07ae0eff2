import { performance } from 'node:perf_hooks';
import { SentinelGroup } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  closeRedis,
  connectRedis,
  isRedisUnavailable,
  parseRedisUrl,
  RedisRoleError,
  type RoleCheckedRedis,
  replicasToAck,
  waitForReplicas,
} from '../src/index.ts';
import { expectUrlRefused } from './url-refusal.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('redis+sentinel:// URLs', () => {
  it('parses the sentinels, the master name and one credential for both', () => {
    const t = parseRedisUrl('redis+sentinel://gateway:p%40ss@10.0.0.1:26379,[::1]:26380,s3/atoll-session');
    expect(t).toEqual({
      kind: 'sentinel',
      name: 'atoll-session',
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '::1', port: 26380 },
        { host: 's3', port: 26379 },
      ],
      username: 'gateway',
      password: 'p@ss',
      sentinelUsername: 'gateway',
      sentinelPassword: 'p@ss',
    });
  });

  it('takes other sentinel credentials from the query', () => {
    const t = parseRedisUrl('redis+sentinel://a:b@h:1/m?sentinelUsername=watch&sentinelPassword=x');
    expect(t).toMatchObject({
      username: 'a',
      password: 'b',
      sentinelUsername: 'watch',
      sentinelPassword: 'x',
    });
  });

  it('keeps redis:// as it is', () => {
    expect(parseRedisUrl('redis://u:p@127.0.0.1:6379')).toEqual({
      kind: 'server',
      url: 'redis://u:p@127.0.0.1:6379',
    });
  });

  it.each([
    ['redis+sentinel://u:secretpw@h1:26379,h2:26379', 'expected redis+sentinel://'],
    ['redis+sentinel://u:secretpw@h1:26379/', 'the master name is missing'],
    ['redis+sentinel://u:secretpw@h1:99999/m', 'the sentinel port in "h1:99999" is not 1-65535'],
    ['redis+sentinel://u:secretpw@h1:26379,,h2/m', 'the sentinel address "" is not <host>:<port>'],
    ['redis+sentinel://u:secretpw@h1/m?db=2', 'unknown parameter db'],
    ['memcached://h1', 'expected redis://'],
  ])('refuses %s with one line that names the problem, never the password', (url, problem) => {
    expectUrlRefused(url, problem);
  });
});

describe('a Sentinel group (primary, replica, three sentinels)', () => {
  let group: SentinelGroup;
  const clients: RoleCheckedRedis[] = [];
  const connect = async (url: string, role: 'session' | 'queue' = 'queue') => {
    const c = await connectRedis({ url, role, use: 'producer', name: `test:${role}`, log: silent });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    group = await SentinelGroup.start({ role: 'queue', keyPrefix: 'tsent' });
  });
  afterAll(async () => {
    await Promise.all(clients.map(closeRedis));
    await group?.dispose();
  });

  it('connects a service through the sentinels as its own user, on the nodes and the sentinels', async () => {
    const c = await connect(group.urlFor('notifier'));
    expect(c.roleOk()).toBe(true);
    expect(replicasToAck(c)).toBe(1);
    await c.set('tsent:lock:{x}', '1', 'PX', 10_000);
    await expect(c.get('tsent:lock:{x}')).resolves.toBe('1');
    // Its user may not touch another service's keys on the nodes…
    await expect(c.get('other:key')).rejects.toThrow(/NOPERM/);
  });

  it('acknowledges a write once a replica has it (WAIT), and says what that costs', async () => {
    const c = await connect(group.urlFor('notifier'));
    const rounds = 200;
    const time = async (ack: boolean) => {
      const start = performance.now();
      for (let i = 0; i < rounds; i++) {
        await c.set(`tsent:lock:{w${i}}`, String(i), 'PX', 10_000);
        if (ack) await waitForReplicas(c);
      }
      return (performance.now() - start) / rounds;
    };
    await time(true); // warm up
    const without = await time(false);
    const withWait = await time(true);
    console.log(
      `sentinel write latency: ${without.toFixed(3)} ms without WAIT, ${withWait.toFixed(3)} ms with WAIT 1 (+${(withWait - without).toFixed(3)} ms)`,
    );
    expect(withWait).toBeLessThan(without + 50);
  });

  it('reports a write no replica acknowledged as unavailable', async () => {
    const c = await connect(group.urlFor('notifier'));
    const primary = await group.primary();
    const replica = group.nodes.find((n) => n !== primary);
    await replica?.stop();
    try {
      await c.set('tsent:lock:{lonely}', '1', 'PX', 10_000);
      const err = await waitForReplicas(c, 200).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).name).toBe('ReplicaAckError');
      expect(isRedisUnavailable(err)).toBe(true);
    } finally {
      if (replica) await group.restart(replica);
    }
  });

  it('checks every node: a replica unfit for the role refuses the service at start-up', async () => {
    const primary = await group.primary();
    const replica = group.nodes.find((n) => n !== primary);
    if (!replica) throw new Error('no replica');
    // The replica starts evicting (the admin may CONFIG SET, no service may): the role check must refuse it.
    const raw = await connectRedis({
      url: replica.url,
      role: 'queue',
      use: 'producer',
      name: 'test:admin',
      log: silent,
    });
    await raw.call('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    try {
      const err = await connect(group.urlFor('notifier')).catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(RedisRoleError);
      expect((err as Error).message).toContain(`127.0.0.1:${replica.port} (replica of atoll-queue)`);
      expect((err as Error).message).toContain('maxmemory-policy is allkeys-lru, must be noeviction');
    } finally {
      await raw.call('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
      await closeRedis(raw);
    }
  });

  it('fails over on SIGKILL: the client finds the new primary, writes acknowledged before survive', async () => {
    const c = await connect(group.urlFor('notifier'));
    for (let i = 0; i < 50; i++) {
      await c.set(`tsent:lock:{kept${i}}`, String(i), 'PX', 60_000);
      await waitForReplicas(c);
    }
    const old = await group.killPrimary();
    const next = await group.waitForFailover(old);
    expect(next).not.toBe(old);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const ok = await c.get('tsent:lock:{kept49}').catch(() => null);
      if (ok === '49') break;
      if (Date.now() > deadline) throw new Error('the client did not reach the new primary');
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let i = 0; i < 50; i++) expect(await c.get(`tsent:lock:{kept${i}}`)).toBe(String(i));
    expect(c.roleOk()).toBe(true);
    await group.restart(old);
  });
});
