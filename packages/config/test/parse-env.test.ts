import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  Env,
  identityPrivateKey,
  identityPublicKeys,
  parseEnv,
  serviceEnv,
  Type,
} from '../src/index.ts';

const Schema = Type.Object({
  PORT: Env.port(3000),
  LOG_LEVEL: Env.logLevel(),
  REDIS_URL: Env.redisUrl('cache'),
  SECRET: Env.secret('METRICS_TOKEN'),
  GRACE_MS: Env.milliseconds(10_000, 'the shutdown grace'),
  SECURE: Env.boolean(true, 'secure cookies'),
});

const good = { REDIS_URL: 'redis://127.0.0.1:6380', SECRET: 'x'.repeat(32) };

describe('parseEnv', () => {
  it('applies defaults and converts types', () => {
    expect(parseEnv(Schema, { ...good, PORT: '8080', SECURE: 'false' })).toEqual({
      PORT: 8080,
      LOG_LEVEL: 'info',
      REDIS_URL: 'redis://127.0.0.1:6380',
      SECRET: 'x'.repeat(32),
      GRACE_MS: 10_000,
      SECURE: false,
    });
  });

  it('accepts a Sentinel group URL and refuses one without its master name', () => {
    const url = 'redis+sentinel://gateway:pw@10.0.0.1:26379,10.0.0.2:26379/atoll-session';
    expect(parseEnv(Schema, { ...good, REDIS_URL: url }).REDIS_URL).toBe(url);
    expect(() =>
      parseEnv(Schema, { ...good, REDIS_URL: 'redis+sentinel://gateway:pw@10.0.0.1:26379' }),
    ).toThrow(/REDIS_URL is malformed .*redis\+sentinel:\/\/<user>:<password>@<sentinel>:26379/);
  });

  it('accepts a Redis Cluster URL, leaving its seed list to @atoll/redis, and refuses another scheme', () => {
    const url = 'redis+cluster://gateway:pw@10.0.0.1:6379,10.0.0.2:6379,10.0.0.3';
    expect(parseEnv(Schema, { ...good, REDIS_URL: url }).REDIS_URL).toBe(url);
    expect(() => parseEnv(Schema, { ...good, REDIS_URL: 'redis+shard://gateway:pw@10.0.0.1:6379' })).toThrow(
      /REDIS_URL is malformed/,
    );
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv(Schema, { ...good, PORT: '' }).PORT).toBe(3000);
  });

  it('names a missing variable and says what it should be', () => {
    const err = (() => {
      try {
        parseEnv(Schema, { SECRET: 'x'.repeat(32) });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect(err?.message).toBe(
      "Invalid configuration: REDIS_URL is missing: the redis-cache URL with the service's own ACL user: one server, redis://<user>:<password>@127.0.0.1:6379, a Sentinel group, redis+sentinel://<user>:<password>@<sentinel>:26379,<sentinel>:26379,…/<master name>, or a Redis Cluster, redis+cluster://<user>:<password>@<node>:6379,<node>:6379,… (see deploy/redis/cache.conf and docs/redis.md)",
    );
  });

  it('names every malformed variable with the value it got, on one line', () => {
    let message = '';
    try {
      parseEnv(Schema, { ...good, PORT: '80x', REDIS_URL: 'localhost:6379', SECRET: 'short' });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).not.toContain('\n');
    expect(message).toContain('PORT must be integer (got "80x"): a TCP port');
    expect(message).toContain('REDIS_URL is malformed (got "localhost:6379"): the redis-cache URL');
    expect(message).toContain('SECRET must not have fewer than 32 characters (got 5 characters)');
    expect(message).not.toContain('short');
    expect(message).toContain('METRICS_TOKEN: at least 32 random characters');
  });

  it('rejects an unknown log level', () => {
    expect(() => parseEnv(Schema, { ...good, LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL .*one of fatal/);
  });
});

describe('serviceEnv', () => {
  it('listens on loopback unless the deployment says otherwise', () => {
    const schema = Type.Object(serviceEnv(3000));
    expect(parseEnv(schema, {}).HOST).toBe('127.0.0.1');
    expect(parseEnv(schema, { HOST: '0.0.0.0' }).HOST).toBe('0.0.0.0');
  });
});

describe('identity keys', () => {
  const pair = () => generateKeyPairSync('ed25519');
  const der = (k: ReturnType<typeof pair>['publicKey']) =>
    k.export({ format: 'der', type: k.type === 'private' ? 'pkcs8' : 'spki' }).toString('base64');
  const errorOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      return e as Error;
    }
    throw new Error('did not throw');
  };

  it('reads the private key inline or from a file, one of the two, and names what is missing', () => {
    const { privateKey } = pair();
    expect(identityPrivateKey({ IDENTITY_PRIVATE_KEY: der(privateKey) }).type).toBe('private');
    const dir = mkdtempSync(join(tmpdir(), 'atoll-config-'));
    try {
      const file = join(dir, 'identity.key');
      writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
      expect(identityPrivateKey({ IDENTITY_PRIVATE_KEY_FILE: file }).type).toBe('private');
      const both = errorOf(() =>
        identityPrivateKey({ IDENTITY_PRIVATE_KEY: der(privateKey), IDENTITY_PRIVATE_KEY_FILE: file }),
      );
      expect(both.message).toContain('not both');
      expect(
        errorOf(() => identityPrivateKey({ IDENTITY_PRIVATE_KEY_FILE: join(dir, 'nope') })).message,
      ).toMatch(/IDENTITY_PRIVATE_KEY_FILE cannot be read/);
    } finally {
      rmSync(dir, { recursive: true });
    }
    const missing = errorOf(() => identityPrivateKey({}));
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing.message).toContain('IDENTITY_PRIVATE_KEY is missing');
    // A public key is no signing key; the message never shows the value.
    const wrong = errorOf(() => identityPrivateKey({ IDENTITY_PRIVATE_KEY: der(pair().publicKey) }));
    expect(wrong.message).toContain('is not an Ed25519 private key');
  });

  it('takes one or two public keys (a rotation), never a private one, never three', () => {
    const [a, b, c] = [pair(), pair(), pair()];
    expect(identityPublicKeys({ IDENTITY_PUBLIC_KEYS: der(a.publicKey) })).toHaveLength(1);
    expect(
      identityPublicKeys({ IDENTITY_PUBLIC_KEYS: `${der(a.publicKey)},${der(b.publicKey)}` }),
    ).toHaveLength(2);
    expect(
      errorOf(() =>
        identityPublicKeys({ IDENTITY_PUBLIC_KEYS: [a, b, c].map((p) => der(p.publicKey)).join(',') }),
      ).message,
    ).toContain('at most two');
    expect(errorOf(() => identityPublicKeys({ IDENTITY_PUBLIC_KEYS: der(a.privateKey) })).message).toContain(
      'is not one or two Ed25519 public keys',
    );
    expect(errorOf(() => identityPublicKeys({})).message).toContain('IDENTITY_PUBLIC_KEYS is missing');
  });
});
