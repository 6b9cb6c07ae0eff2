/**
 * The upstream pool's rules (upstream-pool.ts), as pure functions: which instance is next, which one is
 * skipped and for how long, and which failures send a request to another instance, for which methods.
 * And the upstream variables that list instances (loadConfig).
 */
import type { ConfigError } from '@atoll/config';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import {
  failureKind,
  isUnreachable,
  MAX_ATTEMPTS,
  mayRetry,
  UpstreamPool,
  withInstances,
} from '../src/plugins/upstream-pool.ts';
import { identityKeys } from './helpers.ts';

const A = 'http://10.0.0.1:3002';
const B = 'http://10.0.0.2:3002';
const C = 'http://10.0.0.3:3002';

function clock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe('UpstreamPool', () => {
  it('sends requests to its instances in turn', () => {
    const pool = new UpstreamPool([A, B, C]);
    expect([pool.pick(), pool.pick(), pool.pick(), pool.pick()]).toEqual([A, B, C, A]);
  });

  it('a single instance is always the one', () => {
    const pool = new UpstreamPool([A]);
    expect([pool.pick(), pool.pick()]).toEqual([A, A]);
    expect(pool.maxAttempts).toBe(1);
    expect(pool.pick(new Set([A]))).toBeUndefined();
  });

  it('gives another attempt an instance not yet tried, and none once all were', () => {
    const pool = new UpstreamPool([A, B]);
    const tried = new Set<string>();
    const first = pool.pick(tried) as string;
    tried.add(first);
    const second = pool.pick(tried) as string;
    tried.add(second);
    expect(new Set([first, second])).toEqual(new Set([A, B]));
    expect(pool.pick(tried)).toBeUndefined();
  });

  it('makes one attempt per instance, at most MAX_ATTEMPTS', () => {
    expect(new UpstreamPool([A, B]).maxAttempts).toBe(2);
    expect(new UpstreamPool([A, B, C, 'http://10.0.0.4:1', 'http://10.0.0.5:1']).maxAttempts).toBe(
      MAX_ATTEMPTS,
    );
  });

  it('skips an unreachable instance for ejectMs, then tries it again', () => {
    const c = clock();
    const pool = new UpstreamPool([A, B], { ejectMs: 1500, now: c.now });
    pool.markUnreachable(A);
    expect([pool.pick(), pool.pick(), pool.pick()]).toEqual([B, B, B]);
    c.t += 1500;
    expect(new Set([pool.pick(), pool.pick()])).toEqual(new Set([A, B]));
  });

  it('tries a skipped instance rather than none when every other was tried or is skipped too', () => {
    const c = clock();
    const pool = new UpstreamPool([A, B], { now: c.now });
    pool.markUnreachable(A);
    pool.markUnreachable(B);
    expect([A, B]).toContain(pool.pick());
    expect(pool.pick(new Set([B]))).toBe(A);
    pool.markReachable(A);
    expect([pool.pick(), pool.pick()]).toEqual([A, A]);
  });

  it('tries an unreachable instance before a draining one, and takes back one that answers', () => {
    const c = clock();
    const pool = new UpstreamPool([A, B], { now: c.now });
    pool.markUnreachable(A);
    pool.markDraining(B);
    expect([pool.pick(), pool.pick(), pool.pick()]).toEqual([A, A, A]);
    expect(pool.pick(new Set([A]))).toBe(B);
    pool.markReachable(A);
    pool.markDraining(A);
    expect(pool.pick()).toBe(A); // both drain now: in turn
    c.t += 1500;
    expect(new Set([pool.pick(), pool.pick()])).toEqual(new Set([A, B]));
  });

  it('in any order of refusals, draining answers, answers and time: each pick is the best instance left', () => {
    // The model: what the gateway last learned of each instance, and when.
    type Known = { state: 'answered' } | { state: 'unreachable' | 'draining'; at: number };
    const EJECT = 1500;
    const urls = [A, B, C];
    const instance = fc.integer({ min: 0, max: 2 });
    const op = fc.oneof(
      fc.record({
        kind: fc.constantFrom('refused' as const, 'draining' as const, 'answered' as const),
        instance,
      }),
      fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 1000 }) }),
      fc.record({ kind: fc.constant('pick' as const), tried: fc.subarray([0, 1, 2]) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 3 }),
        fc.array(op, { minLength: 20, maxLength: 80 }),
        (n, ops) => {
          const c = clock();
          const pool = new UpstreamPool(urls.slice(0, n), { ejectMs: EJECT, now: c.now });
          const known = new Map<number, Known>();
          // 0: not skipped; 1: skipped, could not be reached; 2: skipped, drains.
          const rank = (i: number) => {
            const k = known.get(i);
            if (!k || k.state === 'answered' || k.at + EJECT <= c.t) return 0;
            return k.state === 'unreachable' ? 1 : 2;
          };
          for (const o of ops) {
            if (o.kind === 'wait') c.t += o.ms;
            else if (o.kind === 'pick') {
              const tried = new Set(o.tried.filter((i) => i < n));
              const picked = pool.pick(new Set([...tried].map((i) => urls[i] as string)));
              const left = [...Array(n).keys()].filter((i) => !tried.has(i));
              if (left.length === 0) {
                expect(picked).toBeUndefined();
                continue;
              }
              const i = urls.indexOf(picked as string);
              expect(left).toContain(i);
              expect(rank(i)).toBe(Math.min(...left.map(rank)));
            } else if (o.instance < n) {
              const url = urls[o.instance] as string;
              if (o.kind === 'refused') pool.markUnreachable(url);
              else if (o.kind === 'draining') pool.markDraining(url);
              else pool.markReachable(url);
              known.set(
                o.instance,
                o.kind === 'answered'
                  ? { state: 'answered' }
                  : { state: o.kind === 'refused' ? 'unreachable' : 'draining', at: c.t },
              );
            }
          }
        },
      ),
    );
  });

  it('refuses to exist without an instance', () => {
    expect(() => new UpstreamPool([])).toThrow(/at least one/);
  });
});

describe('failureKind and mayRetry', () => {
  const wrapped = (cause: object) => Object.assign(new Error('wrapper'), { code: 'FST_REPLY_FROM_X', cause });

  it('a connection never made is unsent and the instance unreachable, under reply-from’s wrapper too', () => {
    for (const code of ['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENOTFOUND']) {
      expect(failureKind({ code })).toBe('unsent');
      expect(failureKind(wrapped({ code }))).toBe('unsent');
      expect(isUnreachable(wrapped({ code }))).toBe(true);
    }
  });

  it('a reused connection closed before any answer is unsent; a fresh one, or a reset, may have been seen', () => {
    expect(failureKind(wrapped({ code: 'UND_ERR_SOCKET', socket: { bytesRead: 512 } }))).toBe('unsent');
    expect(failureKind(wrapped({ code: 'UND_ERR_SOCKET', socket: { bytesRead: 0 } }))).toBe('sent');
    expect(failureKind(wrapped({ code: 'ECONNRESET' }))).toBe('sent');
    expect(failureKind(wrapped({ code: 'EPIPE' }))).toBe('sent');
    expect(isUnreachable(wrapped({ code: 'ECONNRESET' }))).toBe(false);
  });

  it('a timeout is a timeout, however it is wrapped', () => {
    expect(failureKind(wrapped({ code: 'UND_ERR_HEADERS_TIMEOUT' }))).toBe('timeout');
    expect(failureKind({ code: 'FST_REPLY_FROM_GATEWAY_TIMEOUT' })).toBe('timeout');
  });

  it('sends any method again when unsent, only GET, HEAD and OPTIONS when it may have been seen, nothing after a timeout', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'])
      expect(mayRetry('unsent', method)).toBe(true);
    expect(
      ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE'].filter((m) => mayRetry('sent', m)),
    ).toEqual(['GET', 'HEAD', 'OPTIONS']);
    expect(mayRetry('timeout', 'GET')).toBe(false);
  });
});

describe('withInstances', () => {
  const refused = () => Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });

  it('asks the next instance when one is unreachable, and skips it afterwards', async () => {
    const pool = new UpstreamPool([A, B]);
    const asked: string[] = [];
    const answer = (instance: string) => {
      asked.push(instance);
      return instance === A ? Promise.reject(refused()) : Promise.resolve('ok');
    };
    expect(await withInstances(pool, 'POST', answer)).toBe('ok');
    expect(await withInstances(pool, 'POST', answer)).toBe('ok');
    expect(asked).toEqual([A, B, B]);
  });

  it('gives up with the last error after one attempt per instance, or at once when a retry is not safe', async () => {
    const pool = new UpstreamPool([A, B]);
    await expect(withInstances(pool, 'GET', () => Promise.reject(refused()))).rejects.toThrow('refused');
    let calls = 0;
    const reset = () => {
      calls += 1;
      return Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
    };
    await expect(withInstances(new UpstreamPool([A, B]), 'POST', reset)).rejects.toThrow('reset');
    expect(calls).toBe(1);
  });
});

describe('upstream variables (loadConfig)', () => {
  const env = (urls: Record<string, string>) => ({
    IDENTITY_PRIVATE_KEY: identityKeys.privateKeyText,
    REDIS_SESSION_URL: 'redis://127.0.0.1:1',
    AUTH_URL: 'http://127.0.0.1:3001',
    CONTENT_URL: 'http://127.0.0.1:3002',
    NOTIFIER_URL: 'http://127.0.0.1:3003/',
    ...urls,
  });
  const problems = (urls: Record<string, string>) => {
    try {
      loadConfig(env(urls));
    } catch (err) {
      return (err as ConfigError).problems ?? [(err as Error).message];
    }
    return [];
  };

  it('takes one URL or a comma-separated list of instances, as origins', () => {
    const config = loadConfig(env({ CONTENT_URL: 'http://127.0.0.1:3002,http://127.0.0.1:3012' }));
    expect(config.upstreams).toEqual({
      auth: ['http://127.0.0.1:3001'],
      content: ['http://127.0.0.1:3002', 'http://127.0.0.1:3012'],
      notifier: ['http://127.0.0.1:3003'],
    });
  });

  it('names each URL that is wrong, a path, and an instance listed twice', () => {
    expect(problems({ CONTENT_URL: 'http://127.0.0.1:3002,' }).join()).toMatch(/CONTENT_URL/);
    expect(problems({ CONTENT_URL: 'http://a:1,ftp://b:2' }).join()).toMatch(/CONTENT_URL/);
    expect(problems({ AUTH_URL: 'http://127.0.0.1:3001/api' })).toEqual([
      'AUTH_URL has "http://127.0.0.1:3001/api": give scheme, host and port only (e.g. http://127.0.0.1:3001)',
    ]);
    expect(problems({ AUTH_URL: 'http://[::1:3001' }).join()).toMatch(
      /AUTH_URL has "http:\/\/\[::1:3001", not a URL/,
    );
    expect(problems({ CONTENT_URL: 'http://127.0.0.1:3002,http://127.0.0.1:3002/' })).toEqual([
      'CONTENT_URL lists http://127.0.0.1:3002 more than once',
    ]);
  });
});
