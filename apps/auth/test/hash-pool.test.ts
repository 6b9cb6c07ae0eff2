import { describe, expect, it } from 'vitest';
import { HashPool, isHashingBusy } from '../src/users/hash-pool.ts';

/** An operation that ends when the test says so. */
function gate() {
  let open: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, work: () => done };
}

describe('HashPool', () => {
  it('runs at most `concurrency` at once, queues `queue` more and refuses the rest at once with 503 and Retry-After', async () => {
    const pool = new HashPool({ concurrency: 2, queue: 1, perClient: 3 });
    const gates = [gate(), gate(), gate()];
    const running = gates.map((g) => pool.run(g.work));
    expect(pool.load).toEqual({ active: 2, waiting: 1 });

    // `admit` tells in advance, so a request is turned away before any other work.
    expect(() => pool.admit()).toThrow(/AUTH_HASHING_BUSY/);
    const refused = await pool.run(async () => 'never').catch((err: unknown) => err);
    expect(isHashingBusy(refused)).toBe(true);
    const error = refused as { statusCode: number; headers: Record<string, string>; errors: unknown };
    expect(error.statusCode).toBe(503);
    expect(Number(error.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(error.errors).toEqual({ password: ['checks are busy right now, try again shortly'] });

    // The queued one takes the slot of the first that ends; then there is room again.
    gates[0]?.open();
    await running[0];
    expect(pool.load).toEqual({ active: 2, waiting: 0 });
    for (const g of gates) g.open();
    await Promise.all(running);
    expect(pool.load).toEqual({ active: 0, waiting: 0 });
    expect(() => pool.admit()).not.toThrow();
    expect(await pool.run(async () => 'ran')).toBe('ran');
  });

  it('frees the slot of an operation that fails', async () => {
    const pool = new HashPool({ concurrency: 1, queue: 0, perClient: 1 });
    await expect(pool.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(pool.load).toEqual({ active: 0, waiting: 0 });
    expect(await pool.run(async () => 1)).toBe(1);
  });

  it('gives one client at most `perClient` of the slots and queue places: the others still get a turn', async () => {
    const pool = new HashPool({ concurrency: 2, queue: 2, perClient: 2 });
    const gates = [gate(), gate(), gate()];
    const flood = [pool.run(gates[0]!.work, 'a'), pool.run(gates[1]!.work, 'a')];
    // The third from the same client is refused although there is room...
    const refused = await pool.run(async () => 'never', 'a').catch((err: unknown) => err);
    expect(isHashingBusy(refused)).toBe(true);
    expect(() => pool.admit('a')).toThrow(/AUTH_HASHING_BUSY/);
    // ...which another client gets.
    expect(() => pool.admit('b')).not.toThrow();
    const other = pool.run(gates[2]!.work, 'b');
    expect(pool.load).toEqual({ active: 2, waiting: 1 });
    for (const g of gates) g.open();
    await Promise.all([...flood, other]);
    // Shares are given back as operations end.
    expect(() => pool.admit('a')).not.toThrow();
  });
});
