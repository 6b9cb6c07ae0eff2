/**
 * A script's first call on a client that auto-pipelines, while other commands are on their way: ioredis
 * copies a client's scripts into an auto-pipeline when it opens one, and a pipeline can wait behind a
 * running one for a whole round trip, so a script defined on the client after that pipeline opened could
 * join it without being in it (ioredis #1931: "pipeline[functionName] is not a function", then an uncaught
 * "results[i] is not iterable" that ends the process). Here a slow script keeps one pipeline running,
 * a GET waits in the next, and the new script is called meanwhile.
 */
import { RedisServer } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRedisClient, defineScript, type RedisClient } from '../src/index.ts';

const silent = { info() {}, warn() {}, error() {} };
const tick = () => new Promise((resolve) => setImmediate(resolve));
/** About 300 ms of work on the server: the pipeline that carries it stays running that long. */
const BUSY =
  'local t = redis.call("TIME") local e = t[1] * 1000000 + t[2] + 300000 ' +
  'while true do local n = redis.call("TIME") if n[1] * 1000000 + n[2] > e then break end end return 1';

describe('a script first called while auto-pipelines are on their way', () => {
  let server: RedisServer;
  const clients: RedisClient[] = [];
  beforeAll(async () => {
    server = await RedisServer.start('cache');
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.dispose();
  });

  /** The slow pipeline, a GET waiting behind it, then the script's first calls (two at once). */
  const scenario = async (c: RedisClient, script: ReturnType<typeof defineScript<[string], string>>) => {
    await c.ping();
    const busy = c.eval(BUSY, 0);
    await tick();
    const waiting = c.get('waiting');
    await tick();
    return Promise.all([script.run(c, ['k1'], 'a'), script.run(c, ['k2'], 'b'), busy, waiting]);
  };

  it('is safe on a client made after the script was defined: every script is on it from the start', async () => {
    const echo = defineScript<[string], string>({
      name: 'testEchoEarly',
      keys: ['cacheEntry'],
      lua: 'return ARGV[1]',
    });
    const c = createRedisClient({
      url: server.url,
      role: 'cache',
      use: 'producer',
      autoPipelining: true,
      name: 'test:early',
      log: silent,
    });
    clients.push(c);
    await c.connect();
    expect(await scenario(c, echo)).toEqual(['a', 'b', 1, null]);
  });

  it('is safe on a client that was sending commands before the script was defined', async () => {
    const c = new Redis(server.url, { enableAutoPipelining: true });
    clients.push(c);
    await c.ping();
    const echo = defineScript<[string], string>({
      name: 'testEchoLate',
      keys: ['cacheEntry'],
      lua: 'return ARGV[1]',
    });
    expect(await scenario(c, echo)).toEqual(['a', 'b', 1, null]);
  });
});
