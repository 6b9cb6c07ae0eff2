/**
 * Vitest global setup, shared by every project: makes a PostgreSQL admin connection available to the
 * tests as `inject('adminDatabaseUrl')`. `DATABASE_URL` (a superuser URL) is used when set; otherwise a
 * real embedded PostgreSQL is started once for the whole run and stopped at its end. Each test file then
 * creates its own fresh database (`testDatabase()`), so runs never share state.
 */
import type { TestProject } from 'vitest/node';
import { ownedTempDir, removeOwnedDir } from './owned.ts';
import { type PostgresServer, startEmbeddedPostgres } from './postgres.ts';

// One embedded server for the whole run, even though each project runs this setup.
const shared = globalThis as {
  __atollPg?: { server: Promise<PostgresServer & { dir: string }>; users: number };
};

async function startShared(): Promise<PostgresServer & { dir: string }> {
  const dir = await ownedTempDir('pg');
  const server = await startEmbeddedPostgres({ dir });
  return { ...server, dir };
}

export default async function setup(project: TestProject) {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv) {
    project.provide('adminDatabaseUrl', fromEnv);
    return;
  }
  shared.__atollPg ??= { server: startShared(), users: 0 };
  shared.__atollPg.users += 1;
  const server = await shared.__atollPg.server;
  project.provide('adminDatabaseUrl', server.adminUrl);
  return async () => {
    const entry = shared.__atollPg;
    if (!entry) return;
    entry.users -= 1;
    if (entry.users > 0) return;
    shared.__atollPg = undefined;
    await server.stop();
    removeOwnedDir(server.dir);
  };
}
