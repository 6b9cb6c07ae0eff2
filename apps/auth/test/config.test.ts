import { availableParallelism } from 'node:os';
import { identityKeyPair } from '@atoll/testkit';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';

const env = {
  IDENTITY_PUBLIC_KEYS: identityKeyPair().publicKeyText,
  DATABASE_URL: 'postgres://a@127.0.0.1:1/a',
  REDIS_SESSION_URL: 'redis://127.0.0.1:1',
  REDIS_QUEUE_URL: 'redis://127.0.0.1:1',
};

describe('auth configuration: passwords, the hashing pool and device cookies', () => {
  it('defaults: Argon2id m=64 MiB t=3, a pool of the core count (at most 4), device cookies with __Host-', () => {
    const config = loadConfig(env);
    expect(config.passwordCost).toEqual({ memoryKiB: 65_536, iterations: 3 });
    expect(config.passwordPool).toEqual({
      concurrency: Math.min(availableParallelism(), 4),
      queue: 8,
      perClient: 4,
      // Half of the places may hold new hashes; the rest are kept for logins.
      newHashes: Math.floor((Math.min(availableParallelism(), 4) + 8) / 2),
      // A wait for a turn ends in 503 after 4 s, well before the gateway's 504 at 10 s.
      maxWaitMs: 4000,
    });
    expect(config.passwordChanges).toEqual({ max: 5, windowMs: 3_600_000 });
    expect(config.deviceCookie).toEqual({
      name: '__Host-atoll_device',
      ttlS: 180 * 24 * 3600,
      maxPerAccount: 10,
    });
    expect(config.login).toMatchObject({
      perAccountPrefix56: 10,
      perAccountPrefix48: 20,
      perPrefix56: 200,
      perPrefix48: 400,
      perDevice: 5,
    });
  });

  it("refuses a cost below OWASP's minimum, and a __Host- device cookie without Secure", () => {
    expect(() => loadConfig({ ...env, PASSWORD_ARGON2_MEMORY_KIB: '19455' })).toThrow(
      /PASSWORD_ARGON2_MEMORY_KIB/,
    );
    expect(() => loadConfig({ ...env, PASSWORD_ARGON2_ITERATIONS: '1' })).toThrow(
      /PASSWORD_ARGON2_ITERATIONS/,
    );
    expect(() => loadConfig({ ...env, SESSION_COOKIE_SECURE: 'false' })).toThrow(/DEVICE_COOKIE_NAME/);
    expect(
      loadConfig({ ...env, SESSION_COOKIE_SECURE: 'false', DEVICE_COOKIE_NAME: 'atoll_device' }).deviceCookie
        .name,
    ).toBe('atoll_device');
    expect(loadConfig({ ...env, PASSWORD_HASH_CONCURRENCY: '3' }).passwordPool.concurrency).toBe(3);
    expect(
      loadConfig({ ...env, PASSWORD_HASH_CONCURRENCY: '1', PASSWORD_HASH_QUEUE: '0' }).passwordPool.newHashes,
    ).toBe(1);
    expect(loadConfig({ ...env, PASSWORD_HASH_NEW_MAX: '2' }).passwordPool.newHashes).toBe(2);
    expect(loadConfig({ ...env, PASSWORD_HASH_MAX_WAIT_MS: '1500' }).passwordPool.maxWaitMs).toBe(1500);
  });

  it('takes an internal token of 32 characters or more, none by default', () => {
    expect(loadConfig(env).internalToken).toBeNull();
    expect(loadConfig({ ...env, INTERNAL_TOKEN: 'a'.repeat(32) }).internalToken).toBe('a'.repeat(32));
    expect(() => loadConfig({ ...env, INTERNAL_TOKEN: 'a'.repeat(31) })).toThrow(/INTERNAL_TOKEN/);
  });
});
