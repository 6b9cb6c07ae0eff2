import { readFileSync } from 'node:fs';
import { RedisServer, redisConf } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, connectRedis, RedisRoleError, type RoleCheckedRedis } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };

describe('role checks against real redis-server processes', () => {
  const servers: RedisServer[] = [];
  const clients: RoleCheckedRedis[] = [];
  const start = async (...args: Parameters<typeof RedisServer.start>) => {
    const s = await RedisServer.start(...args);
    servers.push(s);
    return s;
  };
  const connect = async (server: RedisServer, role: 'cache' | 'session' | 'queue') => {
    const c = await connectRedis({
      url: server.url,
      role,
      use: 'producer',
      name: `test:${role}`,
      log: silent,
    });
    clients.push(c);
    return c;
  };

  let cache: RedisServer;
  let session: RedisServer;
  let queue: RedisServer;
  beforeAll(async () => {
    [cache, session, queue] = await Promise.all([start('cache'), start('session'), start('queue')]);
  });
  afterAll(async () => {
    await Promise.all(clients.map(closeRedis));
    await Promise.all(servers.map((s) => s.dispose()));
  });

  it('accepts each deploy/redis config for its own role', async () => {
    for (const [server, role] of [
      [cache, 'cache'],
      [session, 'session'],
      [queue, 'queue'],
    ] as const) {
      const c = await connect(server, role);
      expect(await c.ping()).toBe('PONG');
      expect(c.roleOk()).toBe(true);
    }
  });

  it('refuses a queue connection to an evicting server, naming the setting and the fix', async () => {
    const err = await connect(cache, 'queue').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisRoleError);
    const message = (err as Error).message;
    expect(message).toContain(`redis-queue at 127.0.0.1:${cache.port}`);
    expect(message).toContain('maxmemory-policy is allkeys-lru, must be noeviction');
    expect(message).toContain('appendonly is no, must be yes');
    expect(message).toContain('deploy/redis/queue.conf');
  });

  it('refuses a cache connection to a server without maxmemory', async () => {
    const unbounded = await start('cache', { args: ['--maxmemory', '0'] });
    const err = await connect(unbounded, 'cache').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RedisRoleError);
    expect((err as Error).message).toContain('maxmemory is 0 (unbounded), must be a limit');
  });

  it('refuses a session connection to a server that evicts', async () => {
    const err = await connect(cache, 'session').catch((e: unknown) => e);
    expect((err as Error).message).toMatch(
      /redis-session .* maxmemory-policy is allkeys-lru, must be noeviction/,
    );
  });

  it('refuses a queue server whose append-only file is off', async () => {
    const noAof = await start('queue', { args: ['--appendonly', 'no'] });
    const err = await connect(noAof, 'queue').catch((e: unknown) => e);
    expect((err as Error).message).toContain('appendonly is no, must be yes');
    expect((err as Error).message).not.toContain('maxmemory-policy');
  });

  it('fails with a clear message when nothing listens', async () => {
    const gone = await start('cache');
    await gone.stop();
    const err = await connectRedis({
      url: gone.url,
      role: 'cache',
      use: 'producer',
      name: 'test:gone',
      log: silent,
      connectWaitMs: 500,
    }).catch((e: unknown) => e);
    expect((err as Error).message).toBe(`redis-cache at 127.0.0.1:${gone.port} did not answer within 500 ms`);
  });

  it('re-checks the role after a reconnect and reports a server that came back wrong', async () => {
    const s = await start('queue');
    const c = await connect(s, 'queue');
    const until = async (ok: () => boolean) => {
      const deadline = Date.now() + 5000;
      while (!ok() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return ok();
    };
    await s.restart(['--maxmemory-policy', 'allkeys-lru']);
    expect(await until(() => c.status === 'ready' && !c.roleOk())).toBe(true);
    await s.restart([]);
    expect(await until(() => c.status === 'ready' && c.roleOk())).toBe(true);
  });

  it('keeps in the role files what INFO cannot show a service user: save, appendfsync, protected mode', () => {
    const conf = (role: 'cache' | 'session' | 'queue') => readFileSync(redisConf(role), 'utf8');
    for (const role of ['cache', 'session', 'queue'] as const)
      expect(conf(role), role).toMatch(/^protected-mode yes$/m);
    expect(conf('session')).toMatch(/^save \d+ \d+/m);
    expect(conf('queue')).toMatch(/^appendfsync (everysec|always)$/m);
  });
});
