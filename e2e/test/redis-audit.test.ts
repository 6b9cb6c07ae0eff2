/**
 * `pnpm redis:audit` against a whole stack after real traffic (sign-ups, sign-ins, a failed sign-in, a
 * verified address, articles, comments, favorites, follows, feeds, rankings): every key the services
 * wrote matches a definition of the key map, has the TTL its definition promises and its type; the
 * command finds the stack by itself from the data folder (as beside `npm start`), exits 0, and exits 1
 * once a stray key appears.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { closeRedis, type RoleCheckedRedis } from '@atoll/redis';
import { repoRoot, type Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, redisOf, signUpAll, startTestStack, verifyEmail } from './helpers.ts';

const PASSWORD = 'correct horse battery';
const METRICS_TOKEN = 'metrics-'.repeat(5);

/** Runs the command as `pnpm redis:audit` does, with only the given Redis settings in its environment. */
function audit(env: Record<string, string>, args: string[] = []) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !/^REDIS_|^ATOLL_DATA_DIR$/.test(name)),
  );
  const run = spawnSync(
    process.execPath,
    ['--conditions=atoll-source', join(repoRoot, 'scripts', 'redis-audit.ts'), ...args],
    { env: { ...clean, ...env }, encoding: 'utf8', timeout: 60_000 },
  );
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('key-space audit of a stack after real traffic', () => {
  let stack: Stack;
  let dataDir: string;
  let dispose: () => Promise<void>;
  let cache: RoleCheckedRedis;
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    ({ stack, dataDir, dispose } = await startTestStack(
      'audit',
      // The notifier's audit for /metrics: first run after 2 s, then every 20 s.
      { REDIS_AUDIT_INTERVAL_MS: '20000', METRICS_TOKEN },
      { keepCredentials: true },
    ));
    api = apiClient(stack.gatewayUrl);
    cache = await redisOf(stack, 'cache');
    const token = await signUpAll(api, ['ann', 'bo'], PASSWORD);
    const ann = token.ann as string;
    const bo = token.bo as string;
    await verifyEmail(api, stack, ann, 'ann@example.com');
    expect(
      (
        await api('POST', '/api/users/login', {
          body: { user: { email: 'bo@example.com', password: 'nope' } },
        })
      ).status,
    ).toBe(401);
    const signedIn = await api('POST', '/api/users/login', {
      body: { user: { email: 'bo@example.com', password: PASSWORD } },
    });
    expect(signedIn.status).toBe(200);
    const article = await api('POST', '/api/articles', {
      token: ann,
      body: { article: { title: 'Atolls', description: 'rings of coral', body: 'b', tagList: ['sea'] } },
    });
    expect(article.status).toBe(201);
    const slug = article.body.article.slug as string;
    expect((await api('POST', `/api/profiles/ann/follow`, { token: bo })).status).toBe(200);
    expect((await api('POST', `/api/articles/${slug}/favorite`, { token: bo })).status).toBe(200);
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token: bo,
      body: { comment: { body: 'lovely, @ann' } },
    });
    expect(comment.status).toBe(201);
    for (const path of [
      '/api/articles',
      `/api/articles/${slug}`,
      `/api/articles/${slug}/comments`,
      '/api/articles/feed',
      '/api/profiles/ann',
      '/api/tags',
      '/api/articles/trending',
      '/api/leaderboard',
      '/api/user',
    ])
      expect((await api('GET', path, { token: bo })).status, path).toBe(200);
    // The notifier's jobs have run (follow, favorite, comment notifications, the emails).
    await eventually(async () => (stack.smtp?.to('ann@example.com').length ?? 0) >= 2, 15_000);
  }, 180_000);
  afterAll(async () => {
    await closeRedis(cache);
    await dispose();
  });

  it('finds every key the services wrote in the key map, with its TTL and type, beside the stack', () => {
    // No URLs: the stack's addresses and the audit user's passwords from its data folder.
    const run = audit({ ATOLL_DATA_DIR: dataDir });
    console.info(run.stdout);
    expect(run.stderr).toBe('');
    expect(run.stdout).toMatch(/no violations$/m);
    expect(run.code).toBe(0);
    for (const family of ['session', 'userSessions', 'rateLimit', 'cacheEntry', 'favoritesOf', 'queue:'])
      expect(run.stdout, family).toMatch(new RegExp(`^ {2}${family}\\S* +\\d+ `, 'm'));
  });

  it("shows the notifier's latest audit in its /metrics", { timeout: 60_000 }, async () => {
    const metrics = async () =>
      (
        await fetch(`${stack.services.notifier.url}/metrics`, {
          headers: { authorization: `Bearer ${METRICS_TOKEN}` },
        })
      ).text();
    // A run after the traffic: the sessions are there (an earlier run saw an empty key space).
    const sessions = /^redis_audit_keys\{role="session",family="session",service="notifier"\} [1-9]/m;
    expect(await eventually(async () => sessions.test(await metrics()), 45_000)).toBe(true);
    const text = await metrics();
    expect(text).toMatch(/^redis_audit_keys\{role="queue",family="queue:email",service="notifier"\} [1-9]/m);
    expect(text).toMatch(/^redis_audit_violations\{kind="unknown-key",service="notifier"\} 0$/m);
    expect(text).toMatch(/^redis_audit_violations\{kind="no-ttl",service="notifier"\} 0$/m);
  });

  it('reports a stray key as unknown and exits 1; --json carries the same', async () => {
    const prefix = stack.envOf('content').REDIS_KEY_PREFIX as string;
    await cache.set(`${prefix}:leftover:{x}`, '1', 'EX', 600);
    try {
      const urls = {
        REDIS_CACHE_URL: stack.redis.cache.urlFor('audit'),
        REDIS_SESSION_URL: stack.redis.session.urlFor('audit'),
        REDIS_KEY_PREFIX: prefix,
      };
      const run = audit(urls);
      expect(run.code).toBe(1);
      expect(run.stdout).toContain(`[unknown-key] redis-cache ${prefix}:leftover:{x}: matches no definition`);
      const json = audit(urls, ['--json']);
      expect(json.code).toBe(1);
      const report = JSON.parse(json.stdout);
      expect(report.counts['unknown-key']).toBe(1);
      expect(report.instances.map((i: { role: string }) => i.role)).toEqual(['cache', 'session']);
    } finally {
      await cache.del(`${prefix}:leftover:{x}`);
    }
  });

  it('says what to set when it has nothing to audit, and exits 2', () => {
    const run = audit({ ATOLL_DATA_DIR: join(dataDir, 'nowhere') });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/set REDIS_CACHE_URL, REDIS_SESSION_URL, REDIS_QUEUE_URL/);
  });
});
