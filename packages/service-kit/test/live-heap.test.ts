/**
 * `nodejs_heap_live_bytes` (metrics.ts): the heap in use right after the last full collection. The
 * test holds a large graph of objects across a full collection, then lets it go: the gauge follows what
 * is live, not what happens to be allocated when /metrics is read.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base, fastifyOptions } from '../src/index.ts';

const TOKEN = 'm'.repeat(32);
const MiB = 1024 * 1024;

// A full collection on demand, without starting the test process with --expose-gc.
setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;

describe('nodejs_heap_live_bytes', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify(fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal' }));
    await app.register(base, { service: 'test', metricsToken: TOKEN });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
  });

  const live = async () => {
    const text = (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body;
    return Number(/^nodejs_heap_live_bytes\{service="test"\} (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
  };
  /** A full collection, then the gauge once the observer has seen it. */
  const collectThenRead = async () => {
    const before = await live();
    fullGc();
    for (let i = 0; i < 100; i++) {
      await new Promise((r) => setTimeout(r, 10));
      const now = await live();
      if (now !== before) return now;
    }
    return live();
  };

  it('reads the heap after a full collection: up with what is held, down once it is let go', async () => {
    const start = await collectThenRead();
    expect(start).toBeGreaterThan(0);
    // About 2 million small objects: tens of MiB of V8 heap (not external memory, as a Buffer would be).
    let held: Array<{ i: number; s: string }> | null = Array.from({ length: 2_000_000 }, (_, i) => ({
      i,
      s: `x${i}`,
    }));
    const holding = await collectThenRead();
    expect(held.length).toBe(2_000_000);
    expect(holding - start).toBeGreaterThan(40 * MiB);
    held = null;
    const released = await collectThenRead();
    expect(holding - released).toBeGreaterThan(40 * MiB);
    expect(held).toBeNull();
  });

  it('does not move between full collections, however much garbage is made', async () => {
    const settled = await collectThenRead();
    // Short-lived garbage: young-generation collections only, which the gauge ignores.
    let sum = 0;
    for (let i = 0; i < 200_000; i++) sum += [i, i + 1].length;
    expect(sum).toBe(400_000);
    expect(await live()).toBe(settled);
  });
});
