/**
 * The ACL users generated from the key map (@atoll/redis-keys acl.ts), loaded by real redis-server
 * processes started with the deploy/redis files: every key and channel is open to exactly its users
 * with their access, no service user may run an admin command, nobody connects without a password, and
 * the role check works under each service's own user.
 */
import { type DENIED_COMMANDS, keyPatterns, type RedisRole, SERVICES, servicesOn } from '@atoll/redis-keys';
import { RedisServer, rawRedis } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeRedis, connectRedis } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const PREFIX = 'acl1';
const ROLES = ['cache', 'session', 'queue'] as const;

/** A full command line for each denied command, so DRYRUN judges the permission, not the arity. */
const DENIED_LINES: Record<(typeof DENIED_COMMANDS)[number], string[]> = {
  flushall: ['flushall'],
  flushdb: ['flushdb'],
  'config|get': ['config', 'get', 'requirepass'],
  'config|set': ['config', 'set', 'appendonly', 'no'],
  keys: ['keys', '*'],
  debug: ['debug', 'sleep', '0'],
  shutdown: ['shutdown'],
  'acl|list': ['acl', 'list'],
  'acl|setuser': ['acl', 'setuser', 'x'],
  'module|load': ['module', 'load', '/tmp/x.so'],
  'script|flush': ['script', 'flush'],
  'script|kill': ['script', 'kill'],
  'script|debug': ['script', 'debug', 'sync'],
  'function|flush': ['function', 'flush'],
  monitor: ['monitor'],
  replicaof: ['replicaof', 'no', 'one'],
  save: ['save'],
  bgsave: ['bgsave'],
  'client|kill': ['client', 'kill', 'id', '1'],
  'client|list': ['client', 'list'],
  swapdb: ['swapdb', '0', '1'],
  migrate: ['migrate', 'h', '1', 'k', '0', '1'],
  restore: ['restore', 'k', '0', 'x'],
  randomkey: ['randomkey'],
  dbsize: ['dbsize'],
};

describe('Redis ACL users from the key map, on real servers', () => {
  const servers = {} as Record<RedisRole, RedisServer>;
  const admins = {} as Record<RedisRole, Redis>;
  beforeAll(async () => {
    for (const role of ROLES) {
      servers[role] = await RedisServer.start(role, { keyPrefix: PREFIX });
      admins[role] = new Redis(servers[role].url);
    }
  });
  afterAll(async () => {
    for (const role of ROLES) {
      admins[role]?.disconnect();
      await servers[role]?.dispose();
    }
  });

  /** True when the server would let `user` run the command (ACL DRYRUN, run by the admin). */
  const allowed = async (role: RedisRole, user: string, line: string[]) => {
    if (!servicesOn(role, PREFIX).includes(user as never) && user !== 'default') return false;
    const reply = await admins[role].call('ACL', 'DRYRUN', user, ...line).catch((e: Error) => e.message);
    return reply === 'OK';
  };

  it('opens every key and channel to exactly its users, with their access', async () => {
    for (const p of keyPatterns(PREFIX)) {
      const key = p.glob.replaceAll('*', 'x');
      for (const service of SERVICES) {
        const access = p.users[service];
        const what = `${service} on ${p.key} (${p.instance})`;
        if (p.kind === 'channel') {
          expect(await allowed(p.instance, service, ['publish', key, 'm']), `${what}: publish`).toBe(
            access === 'publish' || access === 'publish-subscribe',
          );
          expect(await allowed(p.instance, service, ['subscribe', key]), `${what}: subscribe`).toBe(
            access === 'subscribe' || access === 'publish-subscribe',
          );
        } else {
          expect(await allowed(p.instance, service, ['get', key]), `${what}: read`).toBe(
            access === 'read' || access === 'readwrite',
          );
          expect(await allowed(p.instance, service, ['del', key]), `${what}: write`).toBe(
            access === 'write' || access === 'readwrite',
          );
        }
      }
      // A key just outside the pattern (another prefix) is nobody's.
      for (const service of SERVICES)
        expect(await allowed(p.instance, service, ['get', `other:${key}`])).toBe(false);
    }
  });

  it('refuses every admin command to every service user', async () => {
    for (const role of ROLES)
      for (const service of servicesOn(role, PREFIX))
        for (const [name, line] of Object.entries(DENIED_LINES))
          expect(await allowed(role, service, line), `${service} on ${role}: ${name}`).toBe(false);
    // The admin still may (the check above is not vacuous).
    expect(await allowed('cache', 'default', ['flushall'])).toBe(true);
  });

  it('refuses a client without a password, and a wrong one', async () => {
    for (const role of ROLES) {
      const replies = await rawRedis(servers[role].port, [
        ['GET', `${PREFIX}:sess:{x}`],
        ['FLUSHALL'],
        ['AUTH', 'default', 'guess'],
        ['AUTH', 'guess'],
      ]);
      expect(replies.slice(0, 2)).toEqual([
        expect.stringMatching(/^-NOAUTH/),
        expect.stringMatching(/^-NOAUTH/),
      ]);
      expect(replies.slice(2)).toEqual([
        expect.stringMatching(/^-WRONGPASS/),
        expect.stringMatching(/^-WRONGPASS/),
      ]);
    }
  });

  it("checks each role under each service's own user (INFO, never CONFIG GET)", async () => {
    for (const role of ROLES) {
      for (const service of servicesOn(role, PREFIX)) {
        const client = await connectRedis({
          url: servers[role].urlFor(service),
          role,
          use: 'producer',
          name: `test:${service}`,
          log: silent,
        });
        expect(client.roleOk()).toBe(true);
        await expect(client.config('GET', 'maxmemory')).rejects.toThrow(/NOPERM/);
        await closeRedis(client);
      }
    }
  });
});
