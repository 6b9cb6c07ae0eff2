/**
 * A script's first call on a client that auto-pipelines, in the same tick as other commands: ioredis copies
 * a client's scripts into a tick's pipeline when it opens it, so a script defined after that could join a
 * pipeline that lacks it (ioredis #1931, "results[i] is not iterable"). defineScript's calls of the tick
 * it defined the script in wait for the next one.
 */
import { RedisServer } from '@atoll/testkit';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineScript } from '../src/index.ts';

describe('a script first called beside auto-pipelined commands', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  beforeAll(async () => {
    server = await RedisServer.start('cache');
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.dispose();
  });

  it('answers every command of the tick, the script included', async () => {
    const echo = defineScript<[string], string>({
      name: 'testEchoFirstTick',
      keys: ['cacheEntry'],
      lua: "redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])",
    });
    for (let round = 0; round < 20; round++) {
      const c = new Redis(server.url, { enableAutoPipelining: true });
      clients.push(c);
      await c.ping();
      // Same tick: plain commands open the tick's pipeline before the script is defined on this client.
      const results = await Promise.all([
        c.set(`a${round}`, '1'),
        echo.run(c, [`k${round}`], `v${round}`),
        echo.run(c, [`j${round}`], `w${round}`),
        c.get(`a${round}`),
        c.incr(`n${round}`),
      ]);
      expect(results).toEqual(['OK', `v${round}`, `w${round}`, '1', 1]);
    }
  });
});
