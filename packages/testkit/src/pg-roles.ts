import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import pg from 'pg';

/** The services with a PostgreSQL schema (the gateway has none). */
export const SCHEMA_SERVICES = ['auth', 'content', 'notifier'] as const;
export type SchemaService = (typeof SCHEMA_SERVICES)[number];

export interface ServiceDatabase {
  /** The service's runtime role: data rights (SELECT, INSERT, UPDATE, DELETE) in its schema, nothing else. */
  role: string;
  url: string;
  /** The schema's owner, for the service's migrations only. */
  ownerRole: string;
  migrateUrl: string;
}

/** The two roles of a service in `database`: named after the database, so test databases never collide. */
export function roleNames(database: string, service: SchemaService) {
  const role = `${database}_${service}`;
  const ownerRole = `${role}_owner`;
  if (ownerRole.length > 63) throw new TypeError(`database name ${database} is too long for its role names`);
  return { role, ownerRole };
}

const id = (name: string) => `"${name.replaceAll('"', '""')}"`;
const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;
const LIMITS = 'LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS';

/**
 * A password as PostgreSQL stores it for `scram-sha-256` (RFC 5802/7677, 4096 iterations): given in
 * CREATE/ALTER ROLE, the password itself never reaches the server, its logs or an init script.
 */
export function scramVerifier(password: string): string {
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, 4096, 32, 'sha256');
  const hmac = (key: Buffer, text: string) => createHmac('sha256', key).update(text).digest();
  const storedKey = createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  return `SCRAM-SHA-256$4096:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** The rights of a service's two roles on its schema (after the schema belongs to the owner). */
function grants(service: SchemaService, role: string, ownerRole: string): string[] {
  const schema = id(service);
  return [
    `REVOKE ALL ON SCHEMA ${schema} FROM PUBLIC`,
    `GRANT USAGE ON SCHEMA ${schema} TO ${id(role)}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${id(role)}`,
    `GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA ${schema} TO ${id(role)}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(ownerRole)} IN SCHEMA ${schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${id(role)}`,
    `ALTER DEFAULT PRIVILEGES FOR ROLE ${id(ownerRole)} IN SCHEMA ${schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO ${id(role)}`,
  ];
}

/**
 * The same roles as `ensureServiceRoles`, as an SQL script for a fresh database (e.g. the PostgreSQL
 * image's /docker-entrypoint-initdb.d). Passwords appear only as SCRAM verifiers.
 */
export function serviceRolesSql(database: string, passwords: Record<string, string>): string {
  const lines = [
    `REVOKE ALL ON DATABASE ${id(database)} FROM PUBLIC;`,
    'REVOKE ALL ON SCHEMA public FROM PUBLIC;',
  ];
  for (const service of SCHEMA_SERVICES) {
    const { role, ownerRole } = roleNames(database, service);
    for (const name of [ownerRole, role]) {
      const password = passwords[name];
      if (!password) throw new Error(`no password for the PostgreSQL role ${name}`);
      lines.push(`CREATE ROLE ${id(name)} WITH ${LIMITS} PASSWORD ${literal(scramVerifier(password))};`);
      lines.push(`GRANT CONNECT ON DATABASE ${id(database)} TO ${id(name)};`);
    }
    lines.push(`CREATE SCHEMA ${id(service)} AUTHORIZATION ${id(ownerRole)};`);
    lines.push(...grants(service, role, ownerRole).map((sql) => `${sql};`));
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Makes (or brings up to date) each service's two roles in the database of `adminUrl` (a URL of a role
 * that may create roles: a superuser, or CREATEROLE), idempotently:
 * - `<db>_<service>_owner` owns the schema `<service>` and everything in it, and runs the migrations;
 * - `<db>_<service>` is what the service connects as: USAGE on its schema and data rights on its tables
 *   and sequences (present and future), no DDL, no other schema, nothing in `public`;
 * - neither is a superuser, creates roles or databases, or can connect to another database; PUBLIC
 *   loses CONNECT and TEMP on the database and every right on `public`.
 * Objects an earlier superuser-run migration left behind are handed to the owner. `passwords` (by role
 * name) are set on every call, so a kept password file stays valid; missing ones are an error.
 */
export async function ensureServiceRoles(
  adminUrl: string,
  passwords: Record<string, string>,
): Promise<Record<SchemaService, ServiceDatabase>> {
  const url = new URL(adminUrl);
  const database = decodeURIComponent(url.pathname.slice(1));
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  const result = {} as Record<SchemaService, ServiceDatabase>;
  try {
    const exec = (sql: string) => client.query(sql);
    await exec(`REVOKE ALL ON DATABASE ${id(database)} FROM PUBLIC`);
    await exec('REVOKE ALL ON SCHEMA public FROM PUBLIC');
    for (const service of SCHEMA_SERVICES) {
      const { role, ownerRole } = roleNames(database, service);
      for (const name of [ownerRole, role]) {
        const password = passwords[name];
        if (!password) throw new Error(`no password for the PostgreSQL role ${name}`);
        const { rowCount } = await client.query('select 1 from pg_roles where rolname = $1', [name]);
        const verb = rowCount ? 'ALTER' : 'CREATE';
        await exec(`${verb} ROLE ${id(name)} WITH ${LIMITS} PASSWORD ${literal(scramVerifier(password))}`);
        await exec(`GRANT CONNECT ON DATABASE ${id(database)} TO ${id(name)}`);
      }
      const { rowCount } = await client.query('select 1 from pg_namespace where nspname = $1', [service]);
      if (!rowCount) await exec(`CREATE SCHEMA ${id(service)} AUTHORIZATION ${id(ownerRole)}`);
      await exec(`ALTER SCHEMA ${id(service)} OWNER TO ${id(ownerRole)}`);
      // Tables, sequences and views a superuser made before the roles existed.
      const { rows } = await client.query<{ name: string; kind: string }>(
        `select c.relname as name, c.relkind as kind from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'S')
            and c.relowner <> (select oid from pg_roles where rolname = $2)`,
        [service, ownerRole],
      );
      for (const r of rows) {
        // An identity or serial sequence follows its table.
        const owned = await client.query(
          `select 1 from pg_depend d join pg_class c on c.oid = d.objid
            where c.relname = $1 and c.relnamespace = $2::regnamespace and d.deptype in ('a', 'i')`,
          [r.name, service],
        );
        if (r.kind === 'S' && owned.rowCount) continue;
        await exec(`ALTER TABLE ${id(service)}.${id(r.name)} OWNER TO ${id(ownerRole)}`);
      }
      for (const sql of grants(service, role, ownerRole)) await exec(sql);
      const as = (name: string) => {
        const u = new URL(adminUrl);
        u.username = encodeURIComponent(name);
        u.password = encodeURIComponent(passwords[name] ?? '');
        return u.toString();
      };
      result[service] = { role, url: as(role), ownerRole, migrateUrl: as(ownerRole) };
    }
  } finally {
    await client.end();
  }
  return result;
}

/** The role names `ensureServiceRoles` uses in `database`. */
export function serviceRoleNames(database: string): string[] {
  return SCHEMA_SERVICES.flatMap((s) => {
    const { role, ownerRole } = roleNames(database, s);
    return [ownerRole, role];
  });
}

/** Drops the service roles of `database` (after the database itself is gone). */
export async function dropServiceRoles(adminUrl: string, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    for (const name of serviceRoleNames(database)) await client.query(`DROP ROLE IF EXISTS ${id(name)}`);
  } finally {
    await client.end();
  }
}
