/** The client address a rate limit counts (rate-limit/address.ts), and the in-memory fallback counter. */
import { describe, expect, it } from 'vitest';
import { limitAddress } from '../src/rate-limit/address.ts';
import { MemoryStore } from '../src/rate-limit/memory-store.ts';

describe('limitAddress', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:7f00:1', '127.0.0.1'],
    ['0:0:0:0:0:ffff:10.0.0.1', '10.0.0.1'],
    ['::1', '::'],
    ['::', '::'],
    ['2001:db8:1:1::1', '2001:db8:1:1::'],
    ['2001:db8:1:1:ffff::9', '2001:db8:1:1::'],
    ['2001:DB8:0:0:1::', '2001:db8::'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::'],
    ['2001:db8:aa:bb:cc:dd:ee:ff', '2001:db8:aa:bb::'],
    ['1:0:0:1:0:0:0:1', '1:0:0:1::'],
    ['0:0:1:0:0:0:0:0', '0:0:1::'],
    ['fe80::1%eth0', 'fe80::'],
    ['64:ff9b::1.2.3.4', '64:ff9b::'],
    // Not an address: kept as it is.
    ['1:2:3', '1:2:3'],
    ['1::2::3', '1::2::3'],
    ['unknown', 'unknown'],
  ])('%s counts as %s', (ip, counted) => {
    expect(limitAddress(ip)).toBe(counted);
  });
});

describe('MemoryStore', () => {
  it('counts in fixed windows', () => {
    const store = new MemoryStore();
    expect(store.incr('a', 1000, 0)).toEqual({ current: 1, ttl: 1000 });
    expect(store.incr('a', 1000, 400)).toEqual({ current: 2, ttl: 600 });
    expect(store.incr('b', 1000, 400)).toEqual({ current: 1, ttl: 1000 });
    expect(store.incr('a', 1000, 1000)).toEqual({ current: 1, ttl: 1000 });
  });

  it('forgets the least recently counted beyond its size', () => {
    const store = new MemoryStore(2);
    store.incr('a', 1000, 0);
    store.incr('b', 1000, 0);
    store.incr('a', 1000, 1);
    store.incr('c', 1000, 2);
    expect(store.incr('a', 1000, 3).current).toBe(3);
    expect(store.incr('b', 1000, 3).current).toBe(1);
  });
});
