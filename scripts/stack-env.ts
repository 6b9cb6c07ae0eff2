/**
 * What `npm start` takes from its environment, derived from the services' own configuration schemas
 * (each app's `EnvSchema`), so the list cannot drift from what the services read:
 * - every variable a service's schema reads goes to that service (and only to those that read it),
 *   except the stack's wiring, which the stack always sets itself (STACK_WIRED in
 *   packages/testkit/src/stack.ts: ports and addresses, Redis, PostgreSQL, SMTP, the OpenID provider, the
 *   services' URLs, the identity key);
 * - the stack command itself reads COMMAND_VARIABLES (PORT and HOST there are the gateway's).
 * An unset or empty variable leaves the default: the stack's (LOCAL_DEFAULTS), else the schema's. The
 * generated file shows the schema's (production-safe) default and notes the local value beside it.
 *
 * Run directly, it writes the root .env.example from the same sources:
 * `node --conditions=atoll-source scripts/stack-env.ts` (e2e/test/config.test.ts checks it is current).
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type Backend, LOCAL_DEFAULTS, type ServiceName, STACK_WIRED } from '@atoll/testkit/servers';
import { EnvSchema as auth } from '../apps/auth/src/config.ts';
import { EnvSchema as content } from '../apps/content/src/config.ts';
import { EnvSchema as gateway } from '../apps/gateway/src/config.ts';
import { EnvSchema as notifier } from '../apps/notifier/src/config.ts';

type Variable = { description?: string; default?: unknown };

/** In the order a reader looks for them: the public entry first. */
export const SCHEMAS: Record<ServiceName, { properties: Record<string, object> }> = {
  gateway,
  auth,
  content,
  notifier,
};
const services = Object.keys(SCHEMAS) as ServiceName[];

/** The variables scripts/stack.ts reads for itself, with the value it assumes when they are unset. */
export const COMMAND_VARIABLES = {
  PORT: { value: '3000', description: "the gateway's port (the other services get free ports)" },
  HOST: { value: '127.0.0.1', description: 'the address the gateway listens on (0.0.0.0: every interface)' },
  DATABASE_URL: {
    value: '',
    description:
      'a PostgreSQL to use, as a role that may create roles, e.g. postgres://admin:pass@127.0.0.1:5432/atoll: the stack makes each service its own role there (<database>_<service>, data rights in its own schema) and a schema owner for its migrations, passwords in ATOLL_DATA_DIR/credentials.json; unset: an embedded PostgreSQL with its data in ATOLL_DATA_DIR',
  },
  SMTP_URL: {
    value: '',
    description:
      'send mail through this SMTP server, e.g. smtp://user:pass@smtp.example.com:587; unset: a local sink logs every email to ATOLL_DATA_DIR/logs/mail.log',
  },
  IDENTITY_KEY_DIR: {
    value: '',
    description:
      "where the gateway's Ed25519 identity key pair lives (identity.key, mode 0600, read by the gateway only; identity.pub, read by the other services), made on the first start if missing; unset: ATOLL_DATA_DIR/identity",
  },
  ATOLL_INSTANCES: {
    value: '',
    description:
      'more than one instance of a service behind the gateway, e.g. auth=2,content=2 (at most 3 each): each on a port of its own, the gateway gets every URL in AUTH_URL, CONTENT_URL or NOTIFIER_URL',
  },
  ATOLL_REDIS_TOPOLOGY: {
    value: '',
    description:
      'run Redis roles as a Sentinel group or a Redis Cluster instead of one server each, e.g. cache=cluster,session=sentinel,queue=sentinel: sentinel (a primary, a replica, three sentinels) for session or queue, cluster (three primaries, three replicas) for any role; the services get redis+sentinel:// or redis+cluster:// URLs (docs/redis.md)',
  },
  ATOLL_DATA_DIR: {
    value: '',
    description:
      'where the Redis files, the embedded PostgreSQL cluster and the logs live; unset: .atoll/data',
  },
} as const;
export type CommandVariable = keyof typeof COMMAND_VARIABLES;

/** ATOLL_INSTANCES (`auth=2,content=2`) as counts per service; throws naming what is wrong. */
export function parseInstances(value: string | undefined): Partial<Record<Backend, number>> {
  const counts: Partial<Record<Backend, number>> = {};
  for (const entry of value ? value.split(',') : []) {
    const [name = '', count = ''] = entry.split('=');
    if (!['auth', 'content', 'notifier'].includes(name) || !/^[1-3]$/.test(count))
      throw new Error(
        `ATOLL_INSTANCES has ${JSON.stringify(entry)}: give <service>=<1 to 3> for auth, content or notifier`,
      );
    counts[name as Backend] = Number(count);
  }
  return counts;
}

/** Which roles each topology may run, as far as the services have been tested on it (docs/redis.md). */
const TOPOLOGIES = { sentinel: ['session', 'queue'], cluster: ['cache', 'session', 'queue'] } as const;

/**
 * ATOLL_REDIS_TOPOLOGY (`cache=cluster,session=sentinel`) as the `sentinel` and `cluster` options of
 * startStack; a role not named stays one server. Throws naming what is wrong.
 */
export function parseRedisTopology(value: string | undefined): {
  sentinel: Array<(typeof TOPOLOGIES.sentinel)[number]>;
  cluster: Array<(typeof TOPOLOGIES.cluster)[number]>;
} {
  const chosen = { sentinel: [] as string[], cluster: [] as string[] };
  for (const entry of value ? value.split(',') : []) {
    const [role = '', topology = ''] = entry.split('=');
    const allowed = (TOPOLOGIES as Record<string, readonly string[]>)[topology];
    if (!allowed?.includes(role) || [...chosen.sentinel, ...chosen.cluster].includes(role))
      throw new Error(
        `ATOLL_REDIS_TOPOLOGY has ${JSON.stringify(entry)}: give each role once, as <cache|session|queue>=cluster or <session|queue>=sentinel`,
      );
    chosen[topology as keyof typeof chosen].push(role);
  }
  return chosen as ReturnType<typeof parseRedisTopology>;
}

/** A variable the stack command reads; empty counts as unset, as in the services' own parsing. */
export function commandSetting(env: Record<string, string | undefined>, name: CommandVariable) {
  return env[name] || undefined;
}

const wired = new Set<string>(STACK_WIRED);

/** The variables of `service` that npm start passes through, in its schema's order. */
export function passedThrough(service: ServiceName): string[] {
  return Object.keys(SCHEMAS[service].properties).filter((name) => !wired.has(name));
}

/** Each service's settings from `env`: the variables its schema reads and the stack does not own. */
export function serviceSettings(
  env: Record<string, string | undefined>,
): Record<ServiceName, Record<string, string>> {
  const settings = {} as Record<ServiceName, Record<string, string>>;
  for (const service of services) {
    settings[service] = {};
    for (const name of passedThrough(service)) {
      const value = env[name];
      if (value) settings[service][name] = value;
    }
  }
  return settings;
}

/**
 * What npm start makes of a variable when it is unset, where that differs from the schema's default. The
 * file shows the schema's default (what a deployment gets); LOCAL_DEFAULTS are for the local stack only.
 */
const LOCAL_NOTES: Record<string, string> = {
  PUBLIC_URL: "the gateway's URL unless set",
  SESSION_COOKIE_NAME: 'atoll_session unless set (no __Host- prefix, as it serves plain HTTP)',
  DEVICE_COOKIE_NAME: 'atoll_device unless set (no __Host- prefix, as it serves plain HTTP)',
  SESSION_COOKIE_SECURE: 'false unless set, as it serves plain HTTP on loopback',
  PASSWORD_DENY_COMMON:
    'false unless set, so the public RealWorld conformance suites (password "password") run unchanged',
};

/** The note of a variable whose local value is not the one shown: it must never reach a deployment. */
function localNote(name: string): string | undefined {
  const note = LOCAL_NOTES[name];
  if (!note) return undefined;
  return name in LOCAL_DEFAULTS ? `${note}; local use only, never in a deployment` : note;
}

function wrap(text: string, width = 108): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > width && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  return [...lines, line];
}

/** A value as both a shell and a dotenv parser read it. */
function quoted(value: string): string {
  return /^[\w.,:/@+-]*$/.test(value) ? value : `"${value}"`;
}

function entry(name: string, description: string, value: string, note?: string): string[] {
  return [...wrap(description), ...(note ? wrap(`npm start: ${note}`) : []), `${name}=${quoted(value)}`];
}

/** The root .env.example: every variable npm start honours, grouped by who reads it. */
export function renderEnvExample(): string {
  const readers = new Map<string, ServiceName[]>();
  for (const service of services)
    for (const name of passedThrough(service)) readers.set(name, [...(readers.get(name) ?? []), service]);
  const groups = new Map<string, string[]>();
  for (const [name, by] of readers) {
    const group = by.length === services.length ? 'every service' : by.join(', ');
    groups.set(group, [...(groups.get(group) ?? []), name]);
  }
  // Every service first, then by service, the variables a service shares before its own.
  const rank = (group: string) =>
    group === 'every service'
      ? 0
      : 1 + services.indexOf(group.split(', ')[0] as ServiceName) * 2 + (group.includes(',') ? 0 : 1);
  const order = [...groups.keys()].sort((a, b) => rank(a) - rank(b));

  const out = [
    '# Every variable `npm start` (the local stack) honours, read from its environment, e.g.',
    '#   CORS_ORIGINS=http://localhost:4200 RATE_LIMIT_ANONYMOUS_MAX=1000 npm start',
    '# Each goes to the services whose configuration reads it; unset or empty, the value shown applies,',
    '# except where a "npm start:" line says what the local stack uses instead (local use only: the value',
    '# shown is the safe one for a deployment).',
    '# The stack sets the rest itself (addresses, Redis, the OpenID provider standing in for Google).',
    '# To keep settings in a file: copy this to .env, then `set -a; . ./.env; set +a; npm start`.',
    "# Generated from the services' config schemas: node --conditions=atoll-source scripts/stack-env.ts",
    '# (each service on its own, outside npm start: apps/<service>/.env.example).',
    '',
    '# --- npm start itself ---',
  ];
  for (const [name, { description, value }] of Object.entries(COMMAND_VARIABLES))
    out.push(...entry(name, description, value));
  for (const group of order) {
    out.push('', `# --- ${group} ---`);
    for (const name of groups.get(group) ?? []) {
      const reader = readers.get(name)?.[0] as ServiceName;
      const schema = SCHEMAS[reader].properties[name] as Variable;
      // The schema's default, never the local stack's: a copy of this file must be safe to deploy.
      const value = schema.default === undefined ? '' : String(schema.default);
      out.push(...entry(name, schema.description ?? name, value, localNote(name)));
    }
  }
  return `${out.join('\n')}\n`;
}

if (import.meta.main) {
  const file = resolve(import.meta.dirname, '..', '.env.example');
  writeFileSync(file, renderEnvExample());
  console.log(`wrote ${file}`);
}
