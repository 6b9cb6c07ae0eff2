/**
 * Every service refuses to start on bad configuration: exit code 1 and one line on stderr that names the
 * variable (or the Redis setting) and what it should be.
 */
import { readFileSync } from 'node:fs';
import {
  identityKeyPair,
  LOCAL_DEFAULTS,
  RedisServer,
  repoRoot,
  ServiceProcess,
  STACK_WIRED,
} from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMAND_VARIABLES, renderEnvExample, SCHEMAS, serviceSettings } from '../../scripts/stack-env.ts';

const keys = identityKeyPair();

async function exitOf(app: string, env: Record<string, string>) {
  const proc = ServiceProcess.spawn(app, env);
  const exit = await proc.exited;
  return { ...exit, stderr: proc.stderr.trim() };
}

const valid: Record<string, Record<string, string>> = {
  gateway: {
    IDENTITY_PRIVATE_KEY: keys.privateKeyText,
    REDIS_SESSION_URL: 'redis://127.0.0.1:1',
    AUTH_URL: 'http://127.0.0.1:1',
    CONTENT_URL: 'http://127.0.0.1:1',
    NOTIFIER_URL: 'http://127.0.0.1:1',
  },
  auth: {
    IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
    DATABASE_URL: 'postgres://a@127.0.0.1:1/a',
    REDIS_SESSION_URL: 'redis://127.0.0.1:1',
    REDIS_QUEUE_URL: 'redis://127.0.0.1:1',
  },
  content: {
    IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
    DATABASE_URL: 'postgres://a@127.0.0.1:1/a',
    REDIS_CACHE_URL: 'redis://127.0.0.1:1',
    REDIS_QUEUE_URL: 'redis://127.0.0.1:1',
    AUTH_URL: 'http://127.0.0.1:1',
  },
  notifier: {
    IDENTITY_PUBLIC_KEYS: keys.publicKeyText,
    DATABASE_URL: 'postgres://a@127.0.0.1:1/a',
    REDIS_QUEUE_URL: 'redis://127.0.0.1:1',
    REDIS_SESSION_URL: 'redis://127.0.0.1:1',
    SMTP_URL: 'smtp://127.0.0.1:1',
    PUBLIC_URL: 'http://127.0.0.1:1',
  },
};

describe('bad configuration', () => {
  for (const app of ['gateway', 'auth', 'content', 'notifier']) {
    it(`${app}: a missing variable exits 1 with one line naming it`, async () => {
      // The gateway needs the private key, every other service the public key(s), and none the other.
      const [name, what] =
        app === 'gateway'
          ? ['IDENTITY_PRIVATE_KEY', 'the Ed25519 private key the gateway signs identity assertions with']
          : [
              'IDENTITY_PUBLIC_KEYS',
              "the gateway's Ed25519 public key(s) identity assertions are checked with",
            ];
      const env = { ...valid[app] };
      delete env[name];
      const { code, stderr } = await exitOf(app, env);
      expect(code).toBe(1);
      expect(stderr.split('\n')).toHaveLength(1);
      expect(stderr).toBe(
        `${app}: Invalid configuration: ${name} is missing: ${what} (or ${name}_FILE, a file holding it; pnpm identity-keys makes a pair)`,
      );
    });

    it(`${app}: a malformed variable exits 1 naming it and the value`, async () => {
      const { code, stderr } = await exitOf(app, { ...valid[app], PORT: 'eighty' });
      expect(code).toBe(1);
      expect(stderr).toBe(
        `${app}: Invalid configuration: PORT must be integer (got "eighty"): a TCP port, 0-65535`,
      );
    });
  }
});

describe('a Redis server configured for another role', () => {
  let cache: RedisServer;
  beforeAll(async () => {
    cache = await RedisServer.start('cache');
  });
  afterAll(async () => {
    await cache.dispose();
  });

  it('notifier refuses to start when REDIS_QUEUE_URL points at the evicting cache server', async () => {
    const { code, stderr } = await exitOf('notifier', {
      ...valid.notifier,
      REDIS_QUEUE_URL: cache.url,
      REDIS_SESSION_URL: cache.url,
    });
    expect(code).toBe(1);
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toContain(
      `notifier: cannot start: redis-queue at 127.0.0.1:${cache.port} is not configured for the queue role`,
    );
    expect(stderr).toContain('maxmemory-policy is allkeys-lru, must be noeviction');
    expect(stderr).toContain('Fix: start it with deploy/redis/queue.conf');
  });

  it('gateway refuses to start when redis-session cannot be reached', async () => {
    const { code, stderr } = await exitOf('gateway', { ...valid.gateway });
    expect(code).toBe(1);
    expect(stderr).toBe('gateway: cannot start: redis-session at 127.0.0.1:1 did not answer within 5000 ms');
  });
});

/** `NAME=value` lines of an .env.example, as [name, value]. */
function listed(path: string): Array<[string, string]> {
  return readFileSync(`${repoRoot}${path}`, 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z][A-Z0-9_]*=/.test(line))
    .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]);
}

describe('.env.example', () => {
  for (const app of ['gateway', 'auth', 'content', 'notifier']) {
    it(`${app}: documents exactly the variables its config schema reads, with their defaults`, async () => {
      const { EnvSchema } = (await import(`${repoRoot}apps/${app}/src/config.ts`)) as {
        EnvSchema: { properties: Record<string, { default?: unknown }> };
      };
      const documented = listed(`apps/${app}/.env.example`);
      expect(documented.map(([name]) => name).sort()).toEqual(Object.keys(EnvSchema.properties).sort());
      const wrongDefaults = documented.filter(([name, value]) => {
        const fallback = EnvSchema.properties[name]?.default;
        return fallback !== undefined && String(fallback) !== value;
      });
      expect(wrongDefaults, 'NAME=value where the schema has another default').toEqual([]);
    });
  }

  it('root: lists every variable npm start passes to a service or reads itself, and nothing else', () => {
    const every = Object.values(SCHEMAS).flatMap((schema) => Object.keys(schema.properties));
    const settings = serviceSettings(Object.fromEntries(every.map((name) => [name, 'set'])));
    for (const [service, passed] of Object.entries(settings)) {
      const names = Object.keys(passed);
      // Only what that service reads, and never the stack's own wiring.
      expect(names.filter((name) => !(name in SCHEMAS[service as keyof typeof SCHEMAS].properties))).toEqual(
        [],
      );
      expect(names.filter((name) => (STACK_WIRED as readonly string[]).includes(name))).toEqual([]);
    }
    const honoured = new Set([
      ...Object.keys(COMMAND_VARIABLES),
      ...Object.values(settings).flatMap((passed) => Object.keys(passed)),
    ]);
    const documented = listed('.env.example').map(([name]) => name);
    expect(documented.length, 'a variable listed twice').toBe(new Set(documented).size);
    expect(documented.sort()).toEqual([...honoured].sort());
  });

  it("root: shows each setting's deployment default; npm start's local values are only noted, as local use only", () => {
    const file = readFileSync(`${repoRoot}.env.example`, 'utf8');
    const values = Object.fromEntries(listed('.env.example'));
    expect(values).toMatchObject({
      SESSION_COOKIE_SECURE: 'true',
      PASSWORD_DENY_COMMON: 'true',
      SESSION_COOKIE_NAME: '__Host-atoll_session',
    });
    for (const [name, local] of Object.entries(LOCAL_DEFAULTS)) {
      const schema = Object.values(SCHEMAS).find((s) => name in s.properties)?.properties[name] as {
        default?: unknown;
      };
      expect(values[name], name).toBe(String(schema.default));
      // The comment just above the line names the local value and says it is for local use only.
      const before =
        file
          .slice(0, file.indexOf(`\n${name}=`))
          .split('\n# --- ')
          .at(-1) ?? '';
      const note = before.slice(before.lastIndexOf('# npm start:'));
      expect(note, name).toContain(local);
      expect(note.replace(/\n# /g, ' '), name).toContain('local use only, never in a deployment');
    }
  });

  it('root: is what the schemas generate (descriptions and defaults included)', () => {
    expect(
      readFileSync(`${repoRoot}.env.example`, 'utf8'),
      'out of date: node --conditions=atoll-source scripts/stack-env.ts writes it again',
    ).toBe(renderEnvExample());
  });
});
