/**
 * Every Redis role as a Redis Cluster (three primaries, three replicas each) under two instances each of
 * auth, content and notifier behind the gateway. While clients read articles through the gateway in loops, one
 * cache primary is SIGKILLed: no read may fail (content falls back to PostgreSQL while the shard has no
 * primary), its replica is promoted and the cluster says `cluster_state:ok` again; the killed node comes
 * back as a replica. Then the instances still act as one: a write through either content instance is
 * read right away through the other (the invalidation bus is sharded pub/sub on the cluster). Measured:
 * reads, failures, the time until the cluster healed and the slowest read meanwhile.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { crossSlotErrors, directToContent, sessionIdentity, startTestStack } from './helpers.ts';

const ARTICLES = 20;
const READ_LOOPS = 8;

describe('every Redis role as a cluster under two instances of each service', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  let token: string;
  const slugs: string[] = [];

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack(
      'cluster',
      {},
      { cluster: ['cache', 'session', 'queue'], instances: { auth: 2, content: 2, notifier: 2 } },
    ));
    api = apiClient(stack.gatewayUrl);
    const reg = await api('POST', '/api/users', {
      body: { user: { username: 'clu', email: 'clu@example.com', password: 'correct horse' } },
    });
    token = reg.body.user.token as string;
    for (let i = 0; i < ARTICLES; i++) {
      const res = await api('POST', '/api/articles', {
        token,
        body: { article: { title: `Cluster ${i}`, description: 'd', body: `body ${i}`, tagList: ['clu'] } },
      });
      expect(res.status).toBe(201);
      slugs.push(res.body.article.slug as string);
    }
  }, 180_000);
  afterAll(async () => {
    await dispose?.();
  });

  it('runs every role on a cluster: every instance connected as its own user', () => {
    expect(stack.clusters.cache?.nodes).toHaveLength(6);
    expect(stack.envOf('content').REDIS_CACHE_URL).toMatch(/^redis\+cluster:\/\/content:/);
    expect(stack.envOf('gateway').REDIS_SESSION_URL).toMatch(/^redis\+cluster:\/\/gateway:/);
    expect(stack.envOf('notifier').REDIS_QUEUE_URL).toMatch(/^redis\+cluster:\/\/notifier:/);
    expect(stack.instances.content).toHaveLength(2);
  });

  it('answers every read while a cache primary is SIGKILLed, and the cluster heals', async () => {
    const cluster = stack.clusters.cache;
    if (!cluster) throw new Error('no cache cluster');
    let running = true;
    let reads = 0;
    let slowestMs = 0;
    const failures: string[] = [];
    const readLoop = async (loop: number) => {
      for (let i = loop; running; i++) {
        const slug = slugs[i % slugs.length] as string;
        const path = i % 4 === 0 ? '/api/articles?tag=clu&limit=5' : `/api/articles/${slug}`;
        const started = performance.now();
        const res = await api('GET', path, { token }).catch((err: Error) => ({
          status: 0,
          body: err.message,
        }));
        slowestMs = Math.max(slowestMs, performance.now() - started);
        reads += 1;
        if (res.status !== 200)
          failures.push(`${path}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`);
      }
    };
    const loops = Array.from({ length: READ_LOOPS }, (_, i) => readLoop(i));
    await new Promise((r) => setTimeout(r, 1000));
    const readsBefore = reads;
    const killed = await cluster.killPrimary();
    const killedAt = performance.now();
    await cluster.waitForFailover(killed);
    const healedMs = performance.now() - killedAt;
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await Promise.all(loops);
    console.log(
      `cache cluster primary kill: ${reads} reads (${reads - readsBefore} from the kill on), ` +
        `${failures.length} failed, healed (replica promoted, cluster_state:ok) after ${Math.round(healedMs)} ms, ` +
        `slowest read ${Math.round(slowestMs)} ms`,
    );
    // On a failure, the services' error lines say which Redis answer was not taken for an outage.
    const errorLines = stack.instances.content.flatMap((proc) =>
      proc.logs
        .filter((line) => Number((line as { level?: number }).level) >= 50)
        .map((line) => `${proc.name}: ${JSON.stringify(line).slice(0, 600)}`),
    );
    expect(failures, errorLines.slice(0, 5).join('\n')).toEqual([]);
    expect(await cluster.primaries()).not.toContain(killed);

    // The killed node comes back (its cluster config kept) as a replica of the node that replaced it.
    await cluster.restart(killed);
    expect(await cluster.replicas()).toContain(killed);
  });

  it('a write through either content instance is read at once through the other, after the failover', async () => {
    const [a, b] = stack.instances.content.map((p) => p.url) as [string, string];
    const identity = await sessionIdentity(api, token);
    const slug = slugs[0] as string;
    // Both instances' caches warm (L1 and L2).
    for (const base of [a, b, a, b])
      expect((await directToContent(base, 'GET', `/api/articles/${slug}`)).status).toBe(200);
    for (const [writer, reader] of [
      [a, b],
      [b, a],
    ] as const) {
      const body = `written through ${writer} at ${Date.now()}`;
      const res = await directToContent(
        writer,
        'PUT',
        `/api/articles/${slug}`,
        { article: { body } },
        identity,
      );
      expect(res.status).toBe(200);
      expect((await directToContent(reader, 'GET', `/api/articles/${slug}`)).body.article.body).toBe(body);
    }
  });

  it('logs no command over keys of several slots in any service', () => {
    expect(crossSlotErrors(stack)).toEqual([]);
  });
});
