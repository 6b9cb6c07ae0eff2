import { describe, expect, it } from 'vitest';
import { ConfigError, Env, parseEnv, Type } from '../src/index.ts';

const Schema = Type.Object({
  PORT: Env.port(3000),
  LOG_LEVEL: Env.logLevel(),
  REDIS_URL: Env.redisUrl('cache'),
  SECRET: Env.secret('IDENTITY_SECRET'),
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
      "Invalid configuration: REDIS_URL is missing: the redis-cache URL with the service's own ACL user, e.g. redis://<user>:<password>@127.0.0.1:6379 (see deploy/redis/cache.conf)",
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
    expect(message).toContain('IDENTITY_SECRET: at least 32 random characters');
  });

  it('rejects an unknown log level', () => {
    expect(() => parseEnv(Schema, { ...good, LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL .*one of fatal/);
  });
});
