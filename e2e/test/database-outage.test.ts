/**
 * PostgreSQL going away under a running stack (its own PostgreSQL, so nothing else is disturbed):
 * cached article reads keep answering within the grace period, writes answer 503 with a clear code,
 * and everything works again when the database is back, without restarting a service.
 */
import {
  createDatabase,
  ownedTempDir,
  type PostgresServer,
  removeOwnedDir,
  type Stack,
  startEmbeddedPostgres,
  startStack,
} from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, GENEROUS_LIMITS, IDENTITY_KEYS } from './helpers.ts';

describe('PostgreSQL down', () => {
  let pgDir: string;
  let dataDir: string;
  let pg: PostgresServer;
  let port: number;
  let stack: Stack;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    pgDir = await ownedTempDir('outage-pg');
    pg = await startEmbeddedPostgres({ dir: pgDir });
    port = Number(new URL(pg.adminUrl).port);
    const database = await createDatabase(pg.adminUrl, 'outage');
    dataDir = await ownedTempDir('outage-stack');
    stack = await startStack({
      dataDir,
      databaseUrl: database.url,
      identity: IDENTITY_KEYS,
      retainLogs: true,
      env: { ...GENEROUS_LIMITS, CACHE_TTL_S: '1', CACHE_GRACE_S: '60', RANKINGS_RECOMPUTE_S: '1' },
    });
    api = apiClient(stack.gatewayUrl);
  }, 90_000);
  afterAll(async () => {
    await stack.stop();
    await pg.stop();
    removeOwnedDir(dataDir);
    removeOwnedDir(pgDir);
  });

  it('serves cached reads within the grace, answers 503 to writes, and recovers', async () => {
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'pat', email: 'pat@example.com', password: 'correct horse' } },
    });
    const token = reg.body.user.token as string;
    const created = await api('POST', '/api/articles', {
      token,
      body: { article: { title: 'Durable', description: 'd', body: 'kept' } },
    });
    const slug = created.body.article.slug as string;
    const before = (await api('GET', `/api/articles/${slug}`)).body;
    // Trending is recomputed every second: wait for the one that includes the article, so that no
    // recompute between the reads below and the outage changes what they saw.
    const trending = async () => (await api('GET', '/api/articles/trending')).body.articlesCount === 1;
    expect(await eventually(trending)).toBe(true);
    // list pages, tags and profiles, read once so they are cached (anonymous and signed in)
    const shared = ['/api/articles?limit=5', '/api/tags', '/api/profiles/pat', '/api/articles/trending'];
    const warm = await Promise.all(shared.map(async (path) => (await api('GET', path)).body));
    const mine = (await api('GET', '/api/articles?author=pat', { token })).body;

    await pg.stop();
    await new Promise((r) => setTimeout(r, 1500)); // the cached entry is now past its 1 s TTL, within its grace
    const read = await api('GET', `/api/articles/${slug}`);
    const content = stack.services.content;
    expect(
      read.status,
      `content running: ${content.running}; ${content.stderr.slice(-800)} ${content.logs
        .slice(-8)
        .map((l) => JSON.stringify(l))
        .join('\n')}`,
    ).toBe(200);
    expect(read.body).toEqual(before);
    for (const [i, path] of shared.entries()) expect((await api('GET', path)).body, path).toEqual(warm[i]);
    // the viewer's flags come from redis-cache's relation sets, so a signed-in list page answers too
    expect((await api('GET', '/api/articles?author=pat', { token })).body).toEqual(mine);

    const write = await api('PUT', `/api/articles/${slug}`, {
      token,
      body: { article: { body: 'changed' } },
    });
    expect(write.status).toBe(503);
    expect(write.body).toEqual({
      errors: { database: ['is unavailable, try again shortly'] },
      code: 'DATABASE_UNAVAILABLE',
    });
    const uncached = await api('GET', '/api/articles/never-cached');
    expect(uncached.status).toBe(503);

    pg = await startEmbeddedPostgres({ dir: pgDir, port });
    expect(
      await eventually(
        async () =>
          (await api('PUT', `/api/articles/${slug}`, { token, body: { article: { body: 'changed' } } }))
            .status === 200,
      ),
    ).toBe(true);
    expect((await api('GET', `/api/articles/${slug}`)).body.article.body).toBe('changed');
  });
});
