import { describe, expect, it } from 'vitest';
import { clientNetworks } from '../src/security/login-limiter.ts';
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
    const pool = new HashPool({ concurrency: 2, queue: 1, perClient: 3, newHashes: 3 });
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
    const pool = new HashPool({ concurrency: 1, queue: 0, perClient: 1, newHashes: 1 });
    await expect(pool.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(pool.load).toEqual({ active: 0, waiting: 0 });
    expect(await pool.run(async () => 1)).toBe(1);
  });

  it('gives one client at most `perClient` of the slots and queue places: the others still get a turn', async () => {
    const pool = new HashPool({ concurrency: 2, queue: 2, perClient: 2, newHashes: 4 });
    const gates = [gate(), gate(), gate()];
    const flood = [pool.run(gates[0]!.work, ['a']), pool.run(gates[1]!.work, ['a'])];
    // The third from the same client is refused although there is room...
    const refused = await pool.run(async () => 'never', ['a']).catch((err: unknown) => err);
    expect(isHashingBusy(refused)).toBe(true);
    expect(() => pool.admit(['a'])).toThrow(/AUTH_HASHING_BUSY/);
    // ...which another client gets.
    expect(() => pool.admit(['b'])).not.toThrow();
    const other = pool.run(gates[2]!.work, ['b']);
    expect(pool.load).toEqual({ active: 2, waiting: 1 });
    for (const g of gates) g.open();
    await Promise.all([...flood, other]);
    // Shares are given back as operations end.
    expect(() => pool.admit(['a'])).not.toThrow();
  });

  it('counts a share at every network of the client: three /64s of one /48, or three addresses of one /24, are one client', async () => {
    const pool = new HashPool({ concurrency: 4, queue: 8, perClient: 3, newHashes: 12 });
    const gates = [gate(), gate(), gate()];
    const flood = ['2001:db8:1:1::1', '2001:db8:1:2::1', '2001:db8:1:3::1'].map((ip, i) =>
      pool.run(gates[i]!.work, clientNetworks(ip), 'new'),
    );
    // A fourth /64 of the same /48 (in another /56) finds the /48's share taken...
    expect(() => pool.admit(clientNetworks('2001:db8:1:400::1'), 'new')).toThrow(/AUTH_HASHING_BUSY/);
    // ...another /48 does not.
    expect(() => pool.admit(clientNetworks('2001:db8:2:1::1'), 'new')).not.toThrow();
    for (const g of gates) g.open();
    await Promise.all(flood);

    const v4 = [gate(), gate(), gate()];
    const more = ['203.0.113.1', '203.0.113.2', '203.0.113.3'].map((ip, i) =>
      pool.run(v4[i]!.work, clientNetworks(ip)),
    );
    expect(() => pool.admit(clientNetworks('203.0.113.4'))).toThrow(/AUTH_HASHING_BUSY/);
    expect(() => pool.admit(clientNetworks('198.51.100.4'))).not.toThrow();
    for (const g of v4) g.open();
    await Promise.all(more);
  });

  it('keeps the places beyond `newHashes` for checks, and a waiting check goes before waiting new hashes', async () => {
    const pool = new HashPool({ concurrency: 1, queue: 3, perClient: 10, newHashes: 2 });
    const started: string[] = [];
    const first = gate();
    const second = gate();
    const tracked = (name: string, work: () => Promise<void>) => () => {
      started.push(name);
      return work();
    };
    // Sign-ups from three places: two get in (one running, one waiting), the third is refused.
    const running = pool.run(tracked('new 1', first.work), ['a'], 'new');
    const queuedNew = pool.run(tracked('new 2', second.work), ['b'], 'new');
    const refused = await pool.run(async () => 'never', ['c'], 'new').catch((err: unknown) => err);
    expect(isHashingBusy(refused)).toBe(true);
    expect(() => pool.admit(['c'], 'new')).toThrow(/AUTH_HASHING_BUSY/);
    // A login still finds a place, and takes the next free slot before the waiting sign-up.
    expect(() => pool.admit(['d'])).not.toThrow();
    const login = pool.run(
      tracked('check', async () => undefined),
      ['d'],
      'check',
    );
    expect(pool.load).toEqual({ active: 1, waiting: 2 });
    first.open();
    second.open();
    await Promise.all([running, queuedNew, login]);
    expect(started).toEqual(['new 1', 'check', 'new 2']);
    expect(pool.load).toEqual({ active: 0, waiting: 0 });
  });
});

describe('HashPool wait limit', () => {
  it('refuses with 503 an operation still waiting after maxWaitMs, and keeps its place for the next one', async () => {
    const pool = new HashPool({ concurrency: 1, queue: 2, perClient: 3, newHashes: 3, maxWaitMs: 100 });
    const running = gate();
    const first = pool.run(running.work, ['198.51.100.1'], 'new');
    const waited = performance.now();
    const late = await pool.run(async () => 'never', ['198.51.100.1'], 'new').catch((err: unknown) => err);
    expect(isHashingBusy(late)).toBe(true);
    expect(performance.now() - waited).toBeGreaterThanOrEqual(90);
    // It left the queue and its client's share: the next one waits, and runs once the slot is free.
    expect(pool.load).toEqual({ active: 1, waiting: 0 });
    const next = pool.run(async () => 'ran', ['198.51.100.1'], 'new');
    running.open();
    await first;
    expect(await next).toBe('ran');
    expect(pool.load).toEqual({ active: 0, waiting: 0 });
  });
});
