/**
 * The distributed lock on a real redis-server (deploy/redis/queue.conf) and a real PostgreSQL, with the
 * holders in real child processes: only one of two contenders works, a holder paused past its lease
 * cannot write after its successor (fencing), and nobody but the holder can release a lease.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createDb, type Kysely, sql } from '@atoll/db';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { ownProcess, RedisServer, type TestDatabase, testDatabase } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { advanceFence, LockClient, tryLease } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A holder process (test/holder.ts) and its output, one parsed JSON line at a time. */
function holder(env: Record<string, string>) {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--conditions=atoll-source', new URL('./holder.ts', import.meta.url).pathname],
    { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] },
  );
  ownProcess(child);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    next: async () => JSON.parse((await lines.next()).value as string),
    send: (line: string) => child.stdin?.write(`${line}\n`),
    exited: new Promise((resolve) => child.once('exit', resolve)),
  };
}

describe('@atoll/lock', () => {
  let server: RedisServer;
  let database: TestDatabase;
  let redis: RoleCheckedRedis;
  let db: Kysely<unknown>;
  const prefix = `l${randomBytes(4).toString('hex')}`;
  const keys = createKeys(prefix);
  let locks: LockClient;
  let env: Record<string, string>;

  beforeAll(async () => {
    [server, database] = await Promise.all([RedisServer.start('queue'), testDatabase('lock')]);
    redis = await connectRedis({ url: server.url, role: 'queue', use: 'producer', name: 't', log: silent });
    db = createDb({ url: database.url, schema: 'public' });
    await sql`create table lock_fences (name text primary key, fence bigint not null)`.execute(db);
    locks = new LockClient(redis, keys);
    env = { REDIS_URL: server.url, DATABASE_URL: database.url, KEY_PREFIX: prefix };
  });
  afterAll(async () => {
    await closeRedis(redis);
    await db.destroy();
    await Promise.all([server.dispose(), database.drop()]);
  });

  it('lets only one of two contending processes work', async () => {
    const a = holder({ ...env, LOCK_NAME: 'contend', TTL_MS: '5000', HOLD_MS: '3000' });
    const b = holder({ ...env, LOCK_NAME: 'contend', TTL_MS: '5000', HOLD_MS: '3000' });
    const results = await Promise.all([a.next(), b.next()]);
    expect(results.filter((r) => r.acquired)).toHaveLength(1);
    expect(results.filter((r) => !r.acquired)).toHaveLength(1);
    const winner = results[0].acquired ? a : b;
    expect(await winner.next()).toEqual({ released: true });
    await Promise.all([a.exited, b.exited]);
    expect(await redis.exists(keys.lock('contend'))).toBe(0);
  });

  it('gives every acquire a larger fence and waits, bounded and jittered, for a busy lock', async () => {
    const first = await locks.acquire('wait', { ttlMs: 300, autoExtend: false });
    expect(first).not.toBeNull();
    expect(await locks.acquire('wait', { ttlMs: 300 })).toBeNull(); // tries once by default
    const second = await locks.acquire('wait', { ttlMs: 1000, waitMs: 3000, retryDelayMs: 50 });
    expect(second?.fence).toBe((first?.fence ?? 0) + 1);
    expect(await locks.acquire('wait', { ttlMs: 1000, waitMs: 200, retryDelayMs: 50 })).toBeNull();
    await second?.release();
  });

  it('keeps extending the lease while the holder works, past its lease time', async () => {
    const result = await locks.withLock('long', { ttlMs: 200 }, async (lease) => {
      await sleep(700);
      return { aborted: lease.signal.aborted, pttl: await redis.pttl(keys.lock('long')) };
    });
    expect(result).toEqual({ acquired: true, value: { aborted: false, pttl: expect.any(Number) } });
    if (result.acquired) expect(result.value.pttl).toBeGreaterThan(0);
    expect(await redis.exists(keys.lock('long'))).toBe(0);
  });

  it('refuses the writes of a holder paused past its lease once its successor has written', async () => {
    const paused = holder({ ...env, LOCK_NAME: 'fenced', TTL_MS: '300' });
    const first = await paused.next();
    expect(first.acquired).toBe(true);
    paused.child.kill('SIGSTOP'); // a long GC pause, a stopped VM: the holder cannot extend its lease
    await sleep(600);
    const successor = await locks.acquire('fenced', { ttlMs: 5000 });
    expect(successor?.fence).toBeGreaterThan(first.fence);
    expect(await advanceFence(db, 'work', successor?.fence ?? 0)).toBe(true);
    paused.child.kill('SIGCONT');
    paused.send('write');
    const late = await paused.next();
    // Fencing refuses the write whether or not the holder noticed in time (here its extension, due while
    // it was stopped, has just told it).
    expect(late.wrote).toBe(false);
    paused.send('release');
    expect(await paused.next()).toEqual({ released: false });
    await paused.exited;
    expect(await redis.get(keys.lock('fenced'))).not.toBeNull(); // the successor's lease is intact
    const rows = await sql<{ fence: string }>`select fence from lock_fences where name = 'work'`.execute(db);
    expect(Number(rows.rows[0]?.fence)).toBe(successor?.fence);
    await successor?.release();
  });

  it("never releases someone else's lease, where the seed's finally { del } did", async () => {
    // The seed's pattern: take the lock, work, `finally { del(key) }`. Work outlasted the lease, another
    // instance took the lock meanwhile, and the DEL removed that instance's lease.
    const naive = async (work: () => Promise<void>) => {
      await redis.set(keys.lock('naive'), 'me', 'PX', 200, 'NX');
      try {
        await work();
      } finally {
        await redis.del(keys.lock('naive'));
      }
    };
    await naive(async () => {
      await sleep(300);
      await redis.set(keys.lock('naive'), 'successor', 'PX', 5000, 'NX');
    });
    expect(await redis.get(keys.lock('naive'))).toBeNull(); // the successor's lease is gone: the bug

    // Ours: the expired holder's release does nothing, the successor keeps its lease.
    const mine = await locks.acquire('safe', { ttlMs: 200, autoExtend: false });
    await sleep(300);
    const successor = await locks.acquire('safe', { ttlMs: 5000 });
    expect(await mine?.release()).toBe(false);
    expect(await mine?.extend()).toBe(false);
    expect(mine?.signal.aborted).toBe(true);
    expect(await redis.exists(keys.lock('safe'))).toBe(1);
    expect(await successor?.release()).toBe(true);
    expect(await redis.exists(keys.lock('safe'))).toBe(0);
  });

  it('gives a short lease to one taker at a time, and releases only its own', async () => {
    const key = keys.cacheLease('test', 'entry');
    const first = await tryLease(redis, key, 60_000);
    expect(first).not.toBeNull();
    expect(await tryLease(redis, key, 60_000)).toBeNull();
    expect(await redis.pttl(key)).toBeGreaterThan(0);
    // The first lease runs out (deleted here, as expiry would), and a second taker gets it.
    await redis.del(key);
    const second = await tryLease(redis, key, 60_000);
    expect(await first?.release()).toBe(false);
    expect(await redis.exists(key)).toBe(1);
    expect(await second?.release()).toBe(true);
    expect(await redis.exists(key)).toBe(0);
  });

  it('aborts the signal of a holder whose lease was taken over', async () => {
    const lease = await locks.acquire('lost', { ttlMs: 150 });
    await redis.set(keys.lock('lost'), 'someone-else', 'PX', 5000); // e.g. after an expiry we slept through
    await sleep(200);
    expect(lease?.signal.aborted).toBe(true);
    expect(await lease?.release()).toBe(false);
    expect(await redis.get(keys.lock('lost'))).toBe('someone-else');
  });
});
