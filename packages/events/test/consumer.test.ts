import { randomBytes, randomUUID } from 'node:crypto';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys, type Keys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  publishUserEvent,
  StreamConsumer,
  type StreamConsumerOptions,
  type StreamEvent,
} from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };

/** A pino-like logger that keeps what it was told. */
function recordingLog() {
  const lines: { level: 'info' | 'warn' | 'error'; obj: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: 'info' | 'warn' | 'error') =>
    (obj: object, msg = '') =>
      void lines.push({ level, obj: obj as Record<string, unknown>, msg });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

const profile = (username = `u${randomBytes(4).toString('hex')}`) => ({
  userId: randomUUID(),
  username,
  bio: null,
  image: null,
  occurredAt: new Date().toISOString(),
  email: `${username}@example.com`,
  emailVerified: false,
});

async function until(ok: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('StreamConsumer on a real redis-queue', () => {
  let server: RedisServer;
  let producer: RoleCheckedRedis;
  let keys: Keys;
  const consumers: StreamConsumer[] = [];
  const workers: RoleCheckedRedis[] = [];

  const worker = async (url = server.url) => {
    const c = await connectRedis({ url, role: 'queue', use: 'worker', name: 'test:events', log: silent });
    workers.push(c);
    return c;
  };
  /** A consumer of this test's stream; `handled` collects what the handler accepted. */
  const consumer = async (opts: Partial<StreamConsumerOptions> & { url?: string } = {}) => {
    const handled: StreamEvent[] = [];
    const c = new StreamConsumer({
      redis: await worker(opts.url),
      stream: keys.userEvents(),
      group: 'content',
      consumer: 'c1',
      log: silent,
      handle: async (event) => void handled.push(event),
      ...opts,
    });
    consumers.push(c);
    return { consumer: c, handled };
  };
  const pendingCount = async (group = 'content') =>
    ((await producer.xpending(keys.userEvents(), group)) as [number, ...unknown[]])[0];

  beforeAll(async () => {
    server = await RedisServer.start('queue');
    producer = await connectRedis({
      url: server.url,
      role: 'queue',
      use: 'producer',
      name: 'test:producer',
      log: silent,
    });
  });
  beforeEach(() => {
    keys = createKeys(`ev${randomBytes(4).toString('hex')}`);
  });
  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((c) => c.stop()));
    await Promise.all(workers.splice(0).map(closeRedis));
  });
  afterAll(async () => {
    await closeRedis(producer);
    await server.dispose();
  });

  it('handles published events in order and acknowledges them', async () => {
    const ids = [
      await publishUserEvent(producer, keys, 'user.registered', { ...profile(), email: 'a@example.com' }),
      await publishUserEvent(producer, keys, 'user.updated', profile()),
      await publishUserEvent(producer, keys, 'user.updated', profile()),
    ];
    const { consumer: c, handled } = await consumer();
    c.start();
    await until(() => handled.length === 3);
    expect(handled.map((e) => e.id)).toEqual(ids);
    expect(handled.map((e) => e.type)).toEqual(['user.registered', 'user.updated', 'user.updated']);
    expect(handled[0]).toMatchObject({ version: 2, payload: { email: 'a@example.com' } });
    await until(async () => (await pendingCount()) === 0);
  });

  it('retries a failed event after claimIdleMs and handles it once', async () => {
    const log = recordingLog();
    let attempts = 0;
    const { consumer: c, handled } = await consumer({
      claimIdleMs: 200,
      log,
      handle: async (event) => {
        attempts += 1;
        if (attempts === 1) throw new Error('database blinked');
        handled.push(event);
      },
    });
    const id = await publishUserEvent(producer, keys, 'user.updated', profile());
    const started = Date.now();
    c.start();
    await until(() => handled.length === 1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(handled[0]?.id).toBe(id);
    expect(attempts).toBe(2);
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([
      expect.objectContaining({ obj: expect.objectContaining({ id, deliveries: 1 }) }),
    ]);
    await until(async () => (await pendingCount()) === 0);
    await new Promise((r) => setTimeout(r, 500)); // a few more claim rounds: nothing comes back
    expect(attempts).toBe(2);
  });

  it('gives up on an event that always fails after maxDeliveries, logging it as an error', async () => {
    const log = recordingLog();
    let attempts = 0;
    const { consumer: c } = await consumer({
      claimIdleMs: 200,
      maxDeliveries: 3,
      log,
      handle: async () => {
        attempts += 1;
        throw new Error('poison');
      },
    });
    const id = await publishUserEvent(producer, keys, 'user.updated', profile());
    c.start();
    await until(() => log.lines.some((l) => l.level === 'error'));
    expect(attempts).toBe(3);
    const dead = log.lines.filter((l) => l.level === 'error');
    expect(dead).toHaveLength(1);
    expect(dead[0]?.obj).toMatchObject({
      id,
      type: 'user.updated',
      deliveries: 3,
      err: { message: 'poison' },
    });
    expect(dead[0]?.msg).toMatch(/dead letter/);
    await until(async () => (await pendingCount()) === 0);
    await new Promise((r) => setTimeout(r, 500));
    expect(attempts).toBe(3);
  });

  it('skips and acknowledges entries it cannot decode', async () => {
    const log = recordingLog();
    const stream = keys.userEvents();
    const unknown = await producer.xadd(stream, '*', 'type', 'user.deleted', 'v', '1', 'data', '{}');
    const badJson = await producer.xadd(stream, '*', 'type', 'user.updated', 'v', '1', 'data', '{nope');
    const good = await publishUserEvent(producer, keys, 'user.updated', profile());
    const { consumer: c, handled } = await consumer({ log });
    c.start();
    await until(() => handled.length === 1);
    expect(handled[0]?.id).toBe(good);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.obj)).toEqual([
      expect.objectContaining({ id: unknown, reason: 'unknown event type "user.deleted"' }),
      expect.objectContaining({ id: badJson, reason: 'user.updated v1: data is not JSON' }),
    ]);
    await until(async () => (await pendingCount()) === 0);
  });

  it('reads the whole history with a group created after the events were published', async () => {
    const first = await consumer();
    first.consumer.start();
    const ids = [
      await publishUserEvent(producer, keys, 'user.updated', profile()),
      await publishUserEvent(producer, keys, 'user.updated', profile()),
    ];
    await until(() => first.handled.length === 2);
    const late = await consumer({ group: 'notifier' });
    late.consumer.start();
    await until(() => late.handled.length === 2);
    expect(late.handled.map((e) => e.id)).toEqual(ids);
    await until(async () => (await pendingCount('notifier')) === 0);
  });

  it('stops without waiting for a blocking read, and resumes where it left off', async () => {
    const { consumer: c, handled } = await consumer({ blockMs: 5000 });
    c.start();
    const before = await publishUserEvent(producer, keys, 'user.updated', profile());
    await until(() => handled.length === 1);
    await new Promise((r) => setTimeout(r, 100)); // now blocked in XREADGROUP for up to 5 s
    const started = Date.now();
    await c.stop();
    expect(Date.now() - started).toBeLessThan(500);
    const after = [
      await publishUserEvent(producer, keys, 'user.updated', profile()),
      await publishUserEvent(producer, keys, 'user.updated', profile()),
    ];
    await new Promise((r) => setTimeout(r, 100));
    expect(handled).toHaveLength(1);
    c.start();
    await until(() => handled.length === 3);
    expect(handled.map((e) => e.id)).toEqual([before, ...after]);
    await until(async () => (await pendingCount()) === 0);
  });

  it('stops promptly while its Redis is away, with a handler in flight finishing first', async () => {
    const own = await RedisServer.start('queue');
    try {
      let inFlight = false;
      let release: () => void = () => undefined;
      const { consumer: c, handled } = await consumer({
        url: own.url,
        handle: async (event) => {
          inFlight = true;
          await new Promise<void>((r) => {
            release = r;
          });
          handled.push(event);
        },
      });
      const p = await connectRedis({ url: own.url, role: 'queue', use: 'producer', name: 't', log: silent });
      await publishUserEvent(p, keys, 'user.updated', profile());
      await closeRedis(p);
      c.start();
      await until(() => inFlight);
      await own.stop();
      const started = Date.now();
      const stopped = c.stop();
      setTimeout(() => release(), 100);
      await stopped;
      expect(Date.now() - started).toBeLessThan(1000);
      expect(handled).toHaveLength(1);
    } finally {
      await own.dispose();
    }
  });

  it('keeps going through a redis-server restart and handles what is published afterwards', async () => {
    const own = await RedisServer.start('queue');
    const log = recordingLog();
    const p = await connectRedis({ url: own.url, role: 'queue', use: 'producer', name: 't', log: silent });
    try {
      const { consumer: c, handled } = await consumer({ url: own.url, log });
      c.start();
      const before = await publishUserEvent(p, keys, 'user.updated', profile());
      await until(() => handled.length === 1);
      await own.stop();
      await new Promise((r) => setTimeout(r, 300));
      await own.restart();
      await until(() => p.status === 'ready');
      const after = await publishUserEvent(p, keys, 'user.updated', profile());
      await until(() => handled.length === 2, 10_000);
      expect(handled.map((e) => e.id)).toEqual([before, after]);
      expect(log.lines.filter((l) => l.level === 'error')).toEqual([]);
    } finally {
      await closeRedis(p);
      await own.dispose();
    }
  });
});
