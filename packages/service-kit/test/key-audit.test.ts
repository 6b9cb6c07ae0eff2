/**
 * The key-space audit in /metrics (key-audit.ts): a service audits its instances as the `audit` user
 * on a timer and the gauges show the last report; a scrape reads those numbers, never Redis.
 */
import { createKeys } from '@atoll/redis-keys';
import { RedisServer } from '@atoll/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base, fastifyOptions, keyAudit } from '../src/index.ts';

const PREFIX = 'ka1';
const TOKEN = 'm'.repeat(32);

describe('key-space audit gauges', () => {
  let cache: RedisServer;
  let admin: Redis;
  let app: FastifyInstance;
  beforeAll(async () => {
    cache = await RedisServer.start('cache', { keyPrefix: PREFIX });
    admin = new Redis(cache.url);
    const keys = createKeys(PREFIX);
    await admin.set(keys.cacheEntry('article', 'a'), '{}', 'EX', 300);
    await admin.set(keys.cacheEntry('article', 'b'), '{}');
    await admin.set(`${PREFIX}:stray`, '1');
    app = Fastify(fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal' }));
    await app.register(base, { service: 'test', metricsToken: TOKEN });
    await app.register(keyAudit, {
      prefix: PREFIX,
      urls: { cache: cache.urlFor('audit') },
      intervalMs: 60_000,
      firstRunMs: 10,
    });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    admin?.disconnect();
    await cache?.dispose();
  });

  const scrape = async () =>
    (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${TOKEN}` } })).body;

  it('runs after start and exports counts, memory and violations per family', async () => {
    for (let i = 0; i < 100 && !app.keyAudit.last(); i++) await new Promise((r) => setTimeout(r, 50));
    expect(app.keyAudit.last()).not.toBeNull();
    const text = await scrape();
    expect(text).toMatch(/^redis_audit_keys\{role="cache",family="cacheEntry",service="test"\} 2$/m);
    expect(text).toMatch(/^redis_audit_keys\{role="cache",family="\(unknown\)",service="test"\} 1$/m);
    expect(text).toMatch(
      /^redis_audit_memory_bytes\{role="cache",family="cacheEntry",service="test"\} \d+$/m,
    );
    expect(text).toMatch(/^redis_audit_violations\{kind="unknown-key",service="test"\} 1$/m);
    expect(text).toMatch(/^redis_audit_violations\{kind="no-ttl",service="test"\} 1$/m);
    expect(text).toMatch(/^redis_audit_violations\{kind="large-value",service="test"\} 0$/m);
    expect(text).toMatch(/^redis_audit_truncated\{role="cache",service="test"\} 0$/m);
    expect(text).toMatch(/^redis_audit_last_success_timestamp_seconds\{service="test"\} [1-9]/m);
  });

  it('shows the next run once it happened, not at scrape time', async () => {
    await admin.del(`${PREFIX}:stray`);
    expect(await scrape()).toMatch(/^redis_audit_violations\{kind="unknown-key",service="test"\} 1$/m);
    await app.keyAudit.run();
    expect(await scrape()).toMatch(/^redis_audit_violations\{kind="unknown-key",service="test"\} 0$/m);
  });
});
