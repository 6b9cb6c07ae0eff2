/**
 * Each service's two PostgreSQL roles, made both ways (ensureServiceRoles on a live database, and the
 * SQL script docker compose runs on a fresh one), on the run's real PostgreSQL with scram-sha-256.
 */
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { testDatabase } from '../src/database.ts';
import {
  ensureServiceRoles,
  roleNames,
  SCHEMA_SERVICES,
  serviceRoleNames,
  serviceRolesSql,
} from '../src/pg-roles.ts';
import type { TestDatabase } from '../src/postgres.ts';
import { randomPassword } from '../src/redis-server.ts';

const passwordsFor = (database: string) =>
  Object.fromEntries(serviceRoleNames(database).map((name) => [name, randomPassword()]));
const as = (url: string, user: string, password: string) => {
  const u = new URL(url);
  u.username = user;
  u.password = password;
  return u.toString();
};
async function query(url: string, sql: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe('the services’ PostgreSQL roles', () => {
  const databases: TestDatabase[] = [];
  afterAll(async () => {
    for (const db of databases) await db.drop();
  });

  it.each(['ensureServiceRoles', 'serviceRolesSql'] as const)(
    '%s: the owner owns the schema, the service signs in with its password only and has data rights',
    async (how) => {
      const db = await testDatabase('roles');
      databases.push(db);
      const passwords = passwordsFor(db.name);
      if (how === 'ensureServiceRoles') {
        await ensureServiceRoles(db.url, passwords);
        await ensureServiceRoles(db.url, passwords); // idempotent
      } else {
        const sql = serviceRolesSql(db.name, passwords);
        for (const password of Object.values(passwords)) expect(sql).not.toContain(password);
        await query(db.url, sql);
      }
      const { role, ownerRole } = roleNames(db.name, 'content');
      await query(as(db.url, ownerRole, passwords[ownerRole] as string), 'create table content.t (id int)');
      const service = as(db.url, role, passwords[role] as string);
      await query(service, 'insert into content.t values (1)');
      expect((await query(service, 'select count(*)::int as n from content.t')).rows[0].n).toBe(1);
      await expect(query(service, 'drop table content.t')).rejects.toMatchObject({ code: '42501' });
      await expect(query(as(db.url, role, 'wrong'), 'select 1')).rejects.toMatchObject({ code: '28P01' });
      const owners = await query(
        db.url,
        "select nspname, pg_get_userbyid(nspowner) as owner from pg_namespace where nspname in ('auth', 'content', 'notifier') order by 1",
      );
      expect(owners.rows).toEqual(
        SCHEMA_SERVICES.map((s) => ({ nspname: s, owner: roleNames(db.name, s).ownerRole })),
      );
    },
  );

  it('hands tables a superuser made before the roles existed to the schema owner', async () => {
    const db = await testDatabase('legacy');
    databases.push(db);
    await query(db.url, 'create schema auth; create table auth.users (id serial primary key)');
    const passwords = passwordsFor(db.name);
    await ensureServiceRoles(db.url, passwords);
    const { role, ownerRole } = roleNames(db.name, 'auth');
    const { rows } = await query(db.url, "select tableowner from pg_tables where tablename = 'users'");
    expect(rows[0].tableowner).toBe(ownerRole);
    await query(as(db.url, role, passwords[role] as string), 'insert into auth.users default values');
  });
});
