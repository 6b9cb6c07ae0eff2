/** The address the brute-force limiter counts: one IPv6 /64 is one place, as at the gateway. */
import { describe, expect, it } from 'vitest';
import { addressPrefixes, limitAddress } from '../src/security/login-limiter.ts';

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

  it('counts an IPv6 client also by its /56 and its /48; IPv4 by its address alone', () => {
    expect(addressPrefixes('203.0.113.9')).toEqual(['203.0.113.9']);
    expect(addressPrefixes('::ffff:203.0.113.9')).toEqual(['203.0.113.9']);
    expect(addressPrefixes('2001:db8:1:1ff::1')).toEqual([
      '2001:db8:1:1ff::/64',
      '2001:db8:1:100::/56',
      '2001:db8:1::/48',
    ]);
    // Two /64s of one /56 share it and the /48; another /56 of the /48 shares only the /48.
    const [, a56, a48] = addressPrefixes('2001:db8:1:100::1');
    const [, b56, b48] = addressPrefixes('2001:db8:1:1ab:ffff::2');
    const [, c56, c48] = addressPrefixes('2001:db8:1:200::1');
    expect([b56, b48]).toEqual([a56, a48]);
    expect(c56).not.toBe(a56);
    expect(c48).toBe(a48);
  });
});
