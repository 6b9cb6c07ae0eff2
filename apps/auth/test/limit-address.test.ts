/** The address the brute-force limiter counts: one IPv6 /64 is one place, as at the gateway. */
import { describe, expect, it } from 'vitest';
import { limitAddress } from '../src/security/login-limiter.ts';

describe('limitAddress', () => {
  it('counts IPv4 as it is, IPv4-mapped IPv6 as IPv4, and IPv6 by its /64', () => {
    expect(limitAddress('203.0.113.9')).toBe('203.0.113.9');
    expect(limitAddress('::ffff:203.0.113.9')).toBe('203.0.113.9');
    const one = limitAddress('2001:db8:1:1::1');
    expect(one).toBe('2001:db8:1:1::/64');
    for (const same of ['2001:db8:1:1::ffff', '2001:0db8:0001:0001:abcd:ef01:2345:6789', '2001:DB8:1:1:8::1'])
      expect(limitAddress(same), same).toBe(one);
    expect(limitAddress('2001:db8:1:2::1')).not.toBe(one);
    expect(limitAddress('::1')).toBe('0:0:0:0::/64');
  });
});
