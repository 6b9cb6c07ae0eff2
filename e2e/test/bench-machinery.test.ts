/**
 * The bench's own machinery, against real servers on loopback, in a few seconds: only 2xx answers of the
 * expected body size count as throughput (the rest are errors by kind), comparisons run in interleaved
 * rounds, and a result above its physical bound is suspect — with every other target of that path —
 * never met. No speed is asserted: the servers here are made fast or slow on purpose.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IDENTITY_HEADER, IdentityVerifier } from '@atoll/identity';
import { gatewayHeaders, gatewayHeadersBatch, identityKeyPair, repoRoot } from '@atoll/testkit';
import { afterAll, describe, expect, it } from 'vitest';
import { exactly, measure } from '../../bench/lib/load.ts';
import { PresignedRequest } from '../../bench/lib/presigned.ts';
import { profileMarkdown, summarizeDir } from '../../bench/lib/profile.ts';
import { interleave, spread } from '../../bench/lib/rounds.ts';
import { judge } from '../../bench/lib/verdict.ts';

const servers: Server[] = [];
afterAll(async () => {
  for (const server of servers) server.close();
});

/** A server on a free loopback port; `answer` is given the request's number (0 for the first). */
async function serve(answer: (n: number) => { status: number; body: string; delayMs?: number }) {
  let n = 0;
  const server = createServer((_req, res) => {
    const { status, body, delayMs = 0 } = answer(n++);
    setTimeout(() => res.writeHead(status, { 'content-type': 'text/plain' }).end(body), delayMs);
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const GOOD = 'x'.repeat(100);

describe('bench machinery', () => {
  it('counts only 2xx answers of the good body size as throughput; the rest as errors, by kind', async () => {
    // The probe (request 0) is good; then, in turn: a 500, a 200 with a short body, a good answer.
    const url = await serve((n) =>
      n === 0 || n % 3 === 0
        ? { status: 200, body: GOOD }
        : n % 3 === 1
          ? { status: 500, body: GOOD }
          : { status: 200, body: 'short' },
    );
    const result = await exactly({ url, requests: [{ path: '/' }] }, 30);
    expect(result.requests).toBe(10);
    expect(result.rejected).toEqual({ status: 10, size: 10, failed: 0 });
    expect(result.errors).toBe(20);
  });

  it('lets a body differ by its declared slack, and no more', async () => {
    const url = await serve((n) => ({ status: 200, body: n % 2 === 0 ? GOOD : `${GOOD}1234` }));
    const within = await exactly({ url, requests: [{ path: '/', bodySlack: 4 }] }, 10);
    expect(within).toMatchObject({ requests: 10, errors: 0 });
    const url2 = await serve((n) => ({ status: 200, body: n % 2 === 0 ? GOOD : `${GOOD}12345` }));
    const beyond = await exactly({ url: url2, requests: [{ path: '/', bodySlack: 4 }] }, 10);
    expect(beyond.rejected).toEqual({ status: 0, size: 5, failed: 0 });
  });

  it('refuses to measure a path whose probe does not answer 2xx', async () => {
    const url = await serve(() => ({ status: 404, body: 'gone' }));
    await expect(exactly({ url, requests: [{ path: '/' }] }, 5)).rejects.toThrow(/probe GET .* 404/);
  });

  it("signs a run's assertions before it, each used once and valid when used; inline only when they run out", async () => {
    const keys = identityKeyPair();
    const verifier = new IdentityVerifier({ audience: 'content', publicKeys: [keys.publicKey] });
    const seen = new Set<string>();
    const refused: string[] = [];
    // A service's check: a valid assertion for this request, never seen before.
    const server = createServer((req, res) => {
      const token = String(req.headers[IDENTITY_HEADER] ?? '');
      const checked = verifier.verify(token, {
        method: req.method ?? '',
        url: req.url ?? '',
        requestId: String(req.headers['x-request-id'] ?? ''),
      });
      const fresh = checked.ok && !seen.has(token);
      seen.add(token);
      if (!fresh) refused.push(checked.ok ? 'replayed' : checked.reason);
      res.writeHead(fresh ? 200 : 401).end(GOOD);
    });
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    let signed = 0;
    const sign = (req: { method: string; url: string }) => {
      signed += 1;
      return gatewayHeaders(keys, 'content', req);
    };

    const ahead = new PresignedRequest('/article/a?x=1', sign, { firstRate: 20_000 });
    const first = await measure(
      { url, requests: [ahead] },
      { seconds: 0.3, connections: 4, warmupSeconds: 0.2 },
    );
    expect(refused).toEqual([]);
    expect(first.errors).toBe(0);
    expect(first.requests).toBeGreaterThan(0);
    expect(ahead.inline).toBe(0);
    // Signed: the probe's, then each run's pool, made before the run (more than the run used).
    expect(signed).toBeGreaterThan(first.requests);

    // A pool made for 1 request per second runs out: the rest are signed as they go, and counted.
    const short = new PresignedRequest('/article/b', sign, { firstRate: 1 });
    const second = await measure(
      { url, requests: [short] },
      { seconds: 1, connections: 4, warmupSeconds: 0 },
    );
    expect(refused).toEqual([]);
    expect(second.errors).toBe(0);
    // The run spent the pool (101) and more: what follows is about the requests after it.
    expect(second.requests).toBeGreaterThan(101 + 4);
    // All but the pool's 101, and the few still in flight when the run ended (one per connection).
    expect(short.inline).toBeGreaterThanOrEqual(second.requests - 101);
    expect(short.inline).toBeLessThanOrEqual(second.requests - 101 + 4);
    // A run of a known length is signed in full. Its probe (a new target is probed first) comes after a
    // spent pool and is signed as it goes, but it is not part of a run: it is not counted.
    const inlineBefore = short.inline;
    await exactly({ url, requests: [short] }, 50);
    expect(short.inline).toBe(inlineBefore);
    // The next run is signed for the rate the last one went at.
    await measure({ url, requests: [short] }, { seconds: 0.3, connections: 4, warmupSeconds: 0 });
    expect(refused).toEqual([]);

    // A pool signed 4 assertions to a signature, as the gateway signs a turn's: the service checks one
    // signature per 4 requests.
    const batches: number[] = [];
    const batched = new PresignedRequest('/article/c', sign, {
      batch: {
        size: 4,
        sign: (reqs) => {
          batches.push(reqs.length);
          return gatewayHeadersBatch(keys, 'content', reqs);
        },
      },
    });
    const checksBefore = verifier.signatureChecks;
    const servedBefore = seen.size;
    const third = await exactly({ url, requests: [batched] }, 40);
    expect(third).toMatchObject({ requests: 40, errors: 0 });
    expect(refused).toEqual([]);
    // A run of 40 is signed for 41 (load.ts): ten batches of 4 and one of 1.
    expect(batches).toEqual([...Array(10).fill(4), 1]);
    // The probe and whatever autocannon sends past its amount are signed one by one; the rest share.
    const served = seen.size - servedBefore;
    expect(served).toBeGreaterThanOrEqual(41);
    expect(verifier.signatureChecks - checksBefore).toBeLessThanOrEqual(11 + (served - 40));
    expect(verifier.signatureChecks - checksBefore).toBeLessThan(served / 2);
  });

  it('interleaves rounds, and marks a path above its physical bound suspect in all its comparisons', async () => {
    // The "path" answers at once; its "reference" takes 20 ms per answer: the path comes out faster than
    // the reference, which a bound of 1× says cannot be.
    const fast = await serve(() => ({ status: 200, body: GOOD }));
    const slow = await serve(() => ({ status: 200, body: GOOD, delayMs: 20 }));
    const order: string[] = [];
    const run = (name: string, url: string) => async () => {
      order.push(name);
      return measure({ url, requests: [{ path: '/' }] }, { seconds: 0.3, connections: 4, warmupSeconds: 0 });
    };
    const rounds = await interleave(run('reference', slow), run('path', fast), 3);
    expect(order).toEqual(['reference', 'path', 'reference', 'path', 'reference', 'path']);
    expect(rounds.ratios).toHaveLength(3);
    for (const ratio of rounds.ratios) expect(ratio).toBeGreaterThan(1);

    const rate = (xs: { rps: number }[]) => spread(xs.map((x) => x.rps)).median;
    const common = {
      ratios: rounds.ratios,
      pathRate: rate(rounds.path),
      referenceRate: rate(rounds.reference),
    };
    const [bounded, other, unrelated] = judge([
      { path: 'fast', reference: 'slow', target: 0.5, upperBound: 1, ...common },
      { path: 'fast', reference: 'something else', target: 0.5, ...common },
      { path: 'another', reference: 'slow', target: 0.5, upperBound: 1, ...common, ratios: [0.6, 0.7, 0.4] },
    ]);
    expect(bounded?.verdict).toBe('suspect');
    expect(bounded?.suspectBecause).toMatch(/slow, above its bound of 1×/);
    // Met on its own, but the same path's other figure is impossible: suspect too.
    expect(other?.verdict).toBe('suspect');
    expect(unrelated?.verdict).toBe('met');
    expect(unrelated?.ratio).toMatchObject({ median: 0.6, min: 0.4, max: 0.7 });
  });

  it('takes quartiles between the closest ranks', () => {
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4, q1: 1.75, q3: 3.25 });
  });
});

describe('--profile summaries', () => {
  it('names the function a real process spent its time in, and a native call by the code that made it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atoll-prof-'));
    try {
      // A process that spends most of its time in `spin`, and some time writing from `writeMany`: to
      // /dev/null, as a file on a disk another process keeps busy can hold those writes longer than
      // the spin (the profiler counts the time a native call waits).
      const script = [
        'function spin() { const end = Date.now() + 800; let x = 0; while (Date.now() < end) x += Math.sqrt(x + 1); return x; }',
        "function writeMany() { const fs = require('node:fs'); for (let i = 0; i < 3000; i++) fs.writeFileSync('/dev/null', 'x'.repeat(64)); }",
        'spin(); writeMany();',
      ].join('\n');
      const folder = join(dir, 'svc');
      mkdirSync(folder);
      const result = spawnSync(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${folder}`, '-e', script]);
      expect(result.status).toBe(0);
      const [summary] = summarizeDir(dir, repoRoot);
      expect(summary?.service).toBe('svc');
      expect(summary?.top[0]?.where).toMatch(/^spin /);
      expect(summary?.top[0]?.share).toBeGreaterThan(0.3);
      expect(summary?.top.some((f) => / ← writeMany /.test(f.where))).toBe(true);
      expect(profileMarkdown(summary ? [summary] : [], 'x')).toContain('## svc');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
