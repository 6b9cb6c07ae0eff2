/**
 * The API reference and the metrics of the whole stack as it runs: `GET /api/openapi.json` assembled
 * from every service's route schemas covers the public RealWorld contract (skipped where it is not
 * found, see contract.ts) and every prefix of the gateway's route table; `GET /api/docs` serves the
 * reference; every service answers `GET /metrics` only with the bearer token, content with its cache
 * counters per layer, and the gateway keeps /internal private.
 */
import { randomBytes } from 'node:crypto';
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTE_TABLE } from '../../apps/gateway/src/routes/table.ts';
import { MISSING, needsContract, readContract } from './contract.ts';
import { startTestStack } from './helpers.ts';

const METRICS_TOKEN = randomBytes(24).toString('hex');

/** The contract's paths, as the gateway serves them (`/api` + path), with their methods. */
function realWorldPaths(): Array<[string, string[]]> {
  const contract = readContract() as { paths: Record<string, Record<string, unknown>> };
  const methods = ['get', 'post', 'put', 'patch', 'delete'];
  return Object.entries(contract.paths).map(([path, item]) => [
    `/api${path}`,
    Object.keys(item).filter((k) => methods.includes(k)),
  ]);
}

describe('API reference and metrics (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let doc: { openapi: string; paths: Record<string, Record<string, unknown>> };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('docs', { METRICS_TOKEN }));
    const res = await fetch(`${stack.gatewayUrl}/api/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as typeof doc;
  }, 120_000);
  afterAll(async () => dispose?.());

  it('is OpenAPI 3.1', () => {
    expect(doc.openapi).toBe('3.1.0');
  });

  it.skipIf(MISSING)(needsContract('has every path of the RealWorld contract, with its methods'), () => {
    const paths = realWorldPaths();
    expect(paths.length).toBeGreaterThan(10);
    for (const [path, methods] of paths) {
      expect(doc.paths, path).toHaveProperty([path]);
      for (const method of methods) expect(doc.paths[path], `${method} ${path}`).toHaveProperty([method]);
    }
  });

  it("has every prefix of the gateway's route table, and the gateway's own routes", async () => {
    const documented = Object.keys(doc.paths);
    for (const { prefix } of ROUTE_TABLE) {
      const shown = documented.some((p) => p === prefix || p.startsWith(`${prefix}/`));
      expect(shown, prefix).toBe(true);
    }
    for (const own of ['/health/live', '/health/ready', '/health/services', '/api/openapi.json'])
      expect(documented).toContain(own);
    // Nothing internal leaks into the public reference.
    expect(documented.filter((p) => p.startsWith('/internal') || p === '/metrics')).toEqual([]);
  });

  it('GET /api/docs serves the reference; /internal is not reachable through the gateway', async () => {
    const page = await fetch(`${stack.gatewayUrl}/api/docs`);
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${stack.gatewayUrl}/api/docs/`);
    expect(await page.text()).toContain('/api/openapi.json');
    expect((await fetch(`${stack.gatewayUrl}/internal/openapi.json`)).status).toBe(404);
  });

  it('every service serves /metrics with the bearer token only; content shows its cache layers', async () => {
    // Two reads of one article: a load (L3) then a hit.
    const reg = await fetch(`${stack.gatewayUrl}/api/users`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        user: { username: 'metrics', email: 'metrics@example.com', password: 'a long password' },
      }),
    });
    const token = ((await reg.json()) as { user: { token: string } }).user.token;
    const created = await fetch(`${stack.gatewayUrl}/api/articles`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Token ${token}` },
      body: JSON.stringify({ article: { title: 'Measured', description: 'd', body: 'b' } }),
    });
    const slug = ((await created.json()) as { article: { slug: string } }).article.slug;
    for (let i = 0; i < 2; i++)
      expect((await fetch(`${stack.gatewayUrl}/api/articles/${slug}`)).status).toBe(200);

    const scrape = (url: string, auth?: string) =>
      fetch(`${url}/metrics`, auth ? { headers: { authorization: auth } } : {});
    for (const name of ['gateway', 'auth', 'content', 'notifier'] as const) {
      const url = stack.services[name].url;
      expect((await scrape(url)).status, name).toBe(401);
      const res = await scrape(url, `Bearer ${METRICS_TOKEN}`);
      expect(res.status, name).toBe(200);
      const text = await res.text();
      expect(text, name).toContain(`http_requests_total{`);
      expect(text, name).toContain(`service="${name}"`);
      expect(text, name).toContain('http_request_duration_seconds_bucket{');
    }
    const content = await (await scrape(stack.services.content.url, `Bearer ${METRICS_TOKEN}`)).text();
    expect(content).toMatch(/content_cache_reads_total\{result="load",service="content"\} [1-9]/);
    expect(content).toMatch(/content_cache_reads_total\{result="l1_hit",service="content"\} [1-9]/);
    expect(content).toContain('content_cache_reads_total{result="l2_hit",service="content"}');
    const notifier = await (await scrape(stack.services.notifier.url, `Bearer ${METRICS_TOKEN}`)).text();
    for (const queue of ['notifications', 'email', 'digests'])
      expect(notifier).toMatch(
        new RegExp(`notifier_queue_jobs\\{queue="${queue}",state="waiting",service="notifier"\\} \\d+`),
      );
    expect(content).toContain('content_cache_reads_total{result="stale_served",service="content"}');
  });

  it('sends no Server-Timing by default (SERVER_TIMING unset), from the gateway or from a service itself', async () => {
    for (const path of ['/api/articles', '/api/tags', '/api/profiles/metrics']) {
      const res = await fetch(`${stack.gatewayUrl}${path}`);
      expect(res.status, path).toBeLessThan(500);
      expect(res.headers.get('server-timing'), path).toBeNull();
    }
    for (const name of ['auth', 'content', 'notifier'] as const) {
      const res = await fetch(`${stack.services[name].url}/health/ready`);
      expect(res.headers.get('server-timing'), name).toBeNull();
    }
  });
});
