import { describe, expect, it } from 'vitest';
import {
  aclFile,
  aclRules,
  createKeys,
  hashTag,
  KEY_SPECS,
  keyPatterns,
  QUEUE_USERS,
  SERVICES,
} from '../src/index.ts';

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

describe('ACL users generated from the key map', () => {
  const prefix = 't1';
  const patterns = keyPatterns(prefix);

  it('names at least one user for every key, channel and queue; bullPrefix is per queue', () => {
    for (const [name, spec] of Object.entries(KEY_SPECS)) {
      if (name === 'bullPrefix') expect(spec.users).toEqual({});
      else expect(Object.keys(spec.users).length, name).toBeGreaterThan(0);
    }
    for (const [queue, users] of Object.entries(QUEUE_USERS)) expect(users.length, queue).toBeGreaterThan(0);
    expect(patterns.length).toBe(Object.keys(KEY_SPECS).length - 1 + Object.keys(QUEUE_USERS).length);
  });

  it("puts every pattern in exactly its users' rules, with their access, and in nobody else's", () => {
    const keyRule = { read: '%R~', write: '%W~', readwrite: '~' } as const;
    for (const p of patterns) {
      for (const service of SERVICES) {
        const rules = aclRules(service, p.instance, prefix) ?? [];
        const mentions = rules.filter((r) => r.replace(/^(%RW?~|%W~|~|&)/, '') === p.glob);
        const access = p.users[service];
        if (!access) {
          expect(mentions, `${service} ${p.key}`).toEqual([]);
        } else if (p.kind === 'channel') {
          expect(mentions, `${service} ${p.key}`).toEqual([`&${p.glob}`]);
        } else {
          expect(mentions, `${service} ${p.key}`).toEqual([
            `${keyRule[access as keyof typeof keyRule]}${p.glob}`,
          ]);
        }
      }
    }
  });

  it('matches the keys the builders make with the globs of their patterns', () => {
    const keys = createKeys(prefix);
    const sample: Record<string, string> = {
      session: keys.session('h'),
      rateLimit: keys.rateLimit('anonymous', '2001:db8::/64'),
      favoritesOf: keys.favoritesOf('1'),
      cacheEntry: keys.cacheEntry('article', 'slug'),
      userEvents: keys.userEvents(),
      liveNotifications: keys.liveNotifications(),
      'queue:email': `${keys.bullPrefix()}:email:42`,
    };
    // Redis globs: `*` any run, braces literal (the only special characters the patterns contain).
    const matches = (glob: string, key: string) =>
      new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replaceAll('*', '.*')}$`).test(key);
    for (const [name, key] of Object.entries(sample)) {
      const pattern = patterns.find((p) => p.key === name);
      expect(pattern && matches(pattern.glob, key), `${name}: ${key}`).toBe(true);
      // …and no other pattern of the same instance claims it.
      const others = patterns.filter((p) => p.key !== name && matches(p.glob, key));
      expect(
        others.map((p) => p.key),
        name,
      ).toEqual([]);
    }
  });

  it('writes the admin as default and each service user on the roles it uses, hashed', () => {
    const passwords = {
      admin: 'a'.repeat(40),
      gateway: 'g'.repeat(40),
      auth: 'u'.repeat(40),
      content: 'c'.repeat(40),
      notifier: 'n'.repeat(40),
    };
    const users = (role: 'cache' | 'session' | 'queue') =>
      aclFile(role, prefix, passwords)
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[1]);
    expect(users('session')).toEqual(['default', 'gateway', 'auth', 'notifier']);
    expect(users('cache')).toEqual(['default', 'content']);
    expect(users('queue')).toEqual(['default', 'auth', 'content', 'notifier']);
    expect(aclFile('session', prefix, passwords)).not.toContain('g'.repeat(40));
    expect(() => aclFile('cache', prefix, { admin: 'short' })).toThrow(/32 characters/);
  });
});
