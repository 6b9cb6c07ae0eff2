import { describe, expect, it } from 'vitest';
import { createKeys, hashTag, KEY_SPECS } from '../src/index.ts';

describe('redis-keys', () => {
  const keys = createKeys('t1');

  it('prefixes every key and puts the identifying part in a hash tag', () => {
    expect(keys.session('abc')).toBe('t1:sess:{abc}');
    expect(keys.userSessions('42')).toBe('t1:user-sess:{42}');
    expect(keys.userEvents()).toBe('t1:events:{users}');
    expect(keys.bullPrefix()).toBe('t1:{bull}');
    expect(hashTag(keys.session('abc'))).toBe('abc');
    expect(keys.rateLimit('anonymous', '2001:db8::/64')).toBe('t1:rl:{anonymous:2001:db8::/64}');
    expect(keys.rateLimit('user', '42')).toBe('t1:rl:{user:42}');
  });

  it('has a builder for every documented key and a spec for every builder', () => {
    const builders = Object.keys(keys).filter((k) => k !== 'prefix');
    expect(builders.sort()).toEqual(Object.keys(KEY_SPECS).sort());
  });

  it('gives every key on the cache and session instances a TTL (channels hold no data)', () => {
    for (const [name, spec] of Object.entries(KEY_SPECS)) {
      const exempt = (spec.instance as string) === 'queue' || (spec.type as string) === 'Channel';
      if (!exempt) expect(spec.ttl, name).not.toMatch(/^none/);
    }
  });

  it('rejects prefixes and tag parts that would break the key space', () => {
    expect(() => createKeys('a:b')).toThrow(/prefix/);
    expect(() => createKeys('')).toThrow(/prefix/);
    expect(() => keys.session('a}b')).toThrow(/braces/);
    expect(() => keys.userSessions('')).toThrow(/non-empty/);
  });

  it('computes the cluster hash tag like Redis does', () => {
    expect(hashTag('plain')).toBe('plain');
    expect(hashTag('a{}b{c}')).toBe('a{}b{c}');
    expect(hashTag('a{b}{c}')).toBe('b');
  });
});
