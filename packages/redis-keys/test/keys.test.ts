import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  aclFile,
  aclRules,
  assertOneSlot,
  auditRules,
  CrossSlotError,
  cacheIds,
  cacheTags,
  createKeys,
  defineKey,
  familyOf,
  hashSlot,
  hashTag,
  KEY_SPECS,
  type KeyDefinition,
  keyFamilies,
  keyPatterns,
  QUEUE_USERS,
  SENTINEL_CLIENT_RULES,
  SERVICES,
  sentinelAclFile,
} from '../src/index.ts';
import { withKeyMap } from '../src/readme.ts';

/** Arguments for a definition's builder: the first literal of each choice, `id` for every id. */
const sampleArgs = (name: string, id: string): string[] =>
  (KEY_SPECS[name as keyof typeof KEY_SPECS] as KeyDefinition).placeholders.map((p) => p.choices?.[0] ?? id);

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
    // A choice takes only its literals, at run time too (callers outside TypeScript's reach).
    expect(() => (keys.ranking as (name: string) => string)('other')).toThrow(/trending, leaderboard/);
  });

  it('derives the builder, its arguments and the slot tag from the pattern alone', () => {
    const key = defineKey({
      pattern: 'x:{<a|b>:<id>}:tail',
      holds: 'a test key',
      instance: 'cache',
      type: 'String',
      ttl: '1 s',
      users: { content: 'readwrite' },
    });
    expect(key.build('p', 'b', '7')).toBe('p:x:{b:7}:tail');
    expect(key.slotTag).toBe('<a|b>:<id>');
    expect(key.placeholders).toEqual([
      { name: 'a|b', choices: ['a', 'b'] },
      { name: 'id', choices: null },
    ]);
    expect(() => key.build('p', 'b', '{')).toThrow(/braces/);
    expect(() => (key.build as (...args: string[]) => string)('p', 'b')).toThrow(/takes 2 arguments/);
    expect(KEY_SPECS.cacheBus.slotTag).toBeNull();
    expect(KEY_SPECS.userEvents.slotTag).toBe('users');
  });

  it('keeps the key map of the README as the definitions render it', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    // On failure: pnpm --filter @atoll/redis-keys readme
    expect(readme).toBe(withKeyMap(readme));
    for (const name of Object.keys(KEY_SPECS)) expect(readme).toContain(`| \`${name}\` |`);
  });

  it('computes the cluster hash tag like Redis does', () => {
    expect(hashTag('plain')).toBe('plain');
    expect(hashTag('a{}b{c}')).toBe('a{}b{c}');
    expect(hashTag('a{b}{c}')).toBe('b');
  });

  it('computes cluster slots like CLUSTER KEYSLOT', () => {
    // Values from the Redis Cluster specification and CLUSTER KEYSLOT on a cluster node.
    expect(hashSlot('123456789')).toBe(12739);
    expect(hashSlot('foo')).toBe(12182);
    expect(hashSlot('somekey')).toBe(11058);
    expect(hashSlot('{user1000}.following')).toBe(hashSlot('{user1000}.followers'));
    expect(hashSlot('{user1000}.following')).toBe(hashSlot('user1000'));
  });

  it('accepts keys of one slot and names the slots of keys that are not', () => {
    expect(assertOneSlot('a script', [keys.lock('x'), keys.lockFence('x')])).toHaveLength(2);
    expect(assertOneSlot('nothing', [])).toEqual([]);
    const apart = [keys.session('a'), keys.rateLimit('user', 'a')];
    expect(() => assertOneSlot('resolve', apart)).toThrow(CrossSlotError);
    expect(() => assertOneSlot('resolve', apart)).toThrow(/resolve touches keys in different cluster slots/);
  });

  it("builds content's cache ids and tags, each a valid hash-tag part", () => {
    expect(cacheIds.article('a b')).toBe('article:a%20b');
    expect(cacheIds.profile('Jake')).toBe('profile:jake');
    expect(cacheIds.list({ tag: 't', author: 'Jake' }, { limit: 10, offset: 0 })).toBe('list:=t:=jake::10:0');
    expect(cacheTags.listName('Jake')).toBe('list:name:jake');
    // Ids fold A–Z only, as every database's lower() does; tags fold as JavaScript does (a superset).
    expect(cacheIds.profile('Ägir')).not.toBe(cacheIds.profile('ägir'));
    expect(cacheIds.list({ author: 'ÉMILE' }, { limit: 1, offset: 0 })).not.toBe(
      cacheIds.list({ author: 'émile' }, { limit: 1, offset: 0 }),
    );
    expect(cacheIds.profile('JAKE')).toBe(cacheIds.profile('jake'));
    expect(cacheTags.listName('Ägir')).toBe(cacheTags.listName('ägir'));
    expect(cacheTags.listTag('{x}')).toBe('list:tag:%7Bx%7D');
    expect(cacheIds.comments('7', { limit: 500, offset: 0 })).toBe('comments:7:500:0');
    expect(cacheTags.comments('7')).toBe('comments:7');
    // Every id and tag goes into a hash tag: it must be one the key builders accept.
    for (const id of [
      cacheIds.article('{'),
      cacheIds.profile('}'),
      cacheIds.popularTags,
      cacheIds.summary('1'),
      cacheIds.comments('1', { limit: 1, offset: 0 }),
    ])
      expect(() => keys.cacheEntry('content', id)).not.toThrow();
    for (const tag of [
      cacheTags.listTag('}{'),
      cacheTags.listName('{'),
      cacheTags.listAll,
      cacheTags.tags,
      cacheTags.comments('1'),
    ])
      expect(() => keys.cacheTag(tag)).not.toThrow();
  });
});

describe("key families (the audit's matchers)", () => {
  const prefix = 't1';
  const families = keyFamilies(prefix);
  const keys = createKeys(prefix);

  it('puts every key a builder makes in its own family, and in no other', () => {
    for (const [name, build] of Object.entries(keys)) {
      if (name === 'prefix' || name === 'bullPrefix') continue;
      if ((KEY_SPECS[name as keyof typeof KEY_SPECS].type as string) === 'Channel') continue;
      // Every argument as one text: the builders take ids and kinds, and the matchers any of them.
      for (const arg of ['a', '2001:db8::/64']) {
        const key = (build as (...args: string[]) => string)(...sampleArgs(name, arg));
        expect(
          families.filter((f) => f.regex.test(key)).map((f) => f.name),
          key,
        ).toEqual([name]);
      }
    }
  });

  it('makes one family per BullMQ queue and none for keys outside the map', () => {
    expect(familyOf(families, `${keys.bullPrefix()}:email:42`)?.name).toBe('queue:email');
    expect(familyOf(families, `${keys.bullPrefix()}:email:`)?.name).toBe('queue:email');
    expect(familyOf(families, `${keys.bullPrefix()}:retired:wait`)).toBeNull();
    expect(familyOf(families, 't1:sess:{a}:extra')).toBeNull();
    expect(familyOf(families, 't1:stray')).toBeNull();
    expect(familyOf(families, 't2:sess:{a}')).toBeNull();
    expect(families.filter((f) => f.name.startsWith('queue:')).length).toBe(Object.keys(QUEUE_USERS).length);
  });

  it('takes the instance, type and TTL rule from the specs', () => {
    const byName = Object.fromEntries(families.map((f) => [f.name, f]));
    expect(byName.session).toMatchObject({ instance: 'session', redisType: 'hash', expires: true });
    expect(byName.ranking).toMatchObject({ instance: 'cache', redisType: 'zset', expires: true });
    expect(byName.lockFence).toMatchObject({ instance: 'queue', redisType: 'string', expires: false });
    expect(byName.userEvents).toMatchObject({ redisType: 'stream', expires: false });
    expect(byName['queue:email']).toMatchObject({ instance: 'queue', redisType: null, expires: false });
    for (const f of families) if (f.instance !== 'queue') expect(f.expires, f.name).toBe(true);
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
    const withAudit = aclFile('cache', prefix, { ...passwords, audit: 'x'.repeat(40) });
    const auditLine = withAudit.trim().split('\n').at(-1) ?? '';
    expect(auditLine).toMatch(/^user audit on #[0-9a-f]{64} /);
    expect(auditLine.endsWith(` ${auditRules(prefix).join(' ')}`)).toBe(true);
    expect(auditRules(prefix)).toContain('%R~t1:*');
  });

  it('gives sentinels over several roles each user once, the services and the audit asking only', () => {
    const passwords = {
      admin: 'a'.repeat(40),
      sentinel: 's'.repeat(40),
      audit: 'x'.repeat(40),
      gateway: 'g'.repeat(40),
      auth: 'u'.repeat(40),
      content: 'c'.repeat(40),
      notifier: 'n'.repeat(40),
    };
    const lines = sentinelAclFile(['session', 'queue'], prefix, passwords).trim().split('\n');
    expect(lines.map((line) => line.split(' ')[1])).toEqual([
      'default',
      'sentinel',
      'gateway',
      'auth',
      'notifier',
      'audit',
      'content',
    ]);
    for (const line of lines.slice(2))
      expect(line.endsWith(` ${SENTINEL_CLIENT_RULES.join(' ')}`), line).toBe(true);
    // One role's sentinels carry only that role's services.
    expect(sentinelAclFile(['session'], prefix, passwords)).not.toMatch(/^user content /m);
    expect(() => sentinelAclFile(['queue'], prefix, { admin: 'a'.repeat(40) })).toThrow(/sentinel user/);
  });
});
