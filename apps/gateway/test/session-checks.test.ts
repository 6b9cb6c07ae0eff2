/**
 * The hub's session checks (src/live/session-checks.ts) on a real redis-session: right answers, never
 * more than the limit in flight, and one EXISTS for all the waiting checks of one session.
 */
import { createKeys } from '@atoll/redis-keys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionChecks } from '../src/live/session-checks.ts';
import { startGateway, type TestGateway } from './helpers.ts';

describe('session checks (real redis-session)', () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startGateway();
  });
  afterAll(() => gateway.close());

  it('answers each check, at most `limit` in flight, one EXISTS per session waiting', async () => {
    const { client } = gateway;
    const keys = createKeys(gateway.config.keyPrefix);
    const [alive, gone, other] = [keys.session('alive'), keys.session('gone'), keys.session('other')];
    await client.hset(alive, 'userId', 'u-1');
    let inFlight = 0;
    let most = 0;
    let calls = 0;
    const checks = new SessionChecks(async (key) => {
      calls += 1;
      inFlight += 1;
      most = Math.max(most, inFlight);
      try {
        return (await client.exists(key)) === 1;
      } finally {
        inFlight -= 1;
      }
    }, 1);

    // The first goes out at once; the other checks wait behind it, together per session.
    const answers = await Promise.all([
      checks.check(other),
      ...Array.from({ length: 50 }, () => checks.check(alive)),
      ...Array.from({ length: 50 }, () => checks.check(gone)),
    ]);
    expect(answers[0]).toBe(false);
    expect(answers.slice(1, 51).every((a) => a === true)).toBe(true);
    expect(answers.slice(51).every((a) => a === false)).toBe(true);
    expect(calls).toBe(3);
    expect(most).toBe(1);
  });

  it('a failed check rejects its waiters, and the next checks go on', async () => {
    const keys = createKeys(gateway.config.keyPrefix);
    const checks = new SessionChecks(async (key) => {
      // WRONGTYPE from the real server: the key holds a string where a session is a hash.
      await gateway.client.hget(key, 'userId');
      return true;
    }, 2);
    await gateway.client.set(keys.session('string'), 'x');
    const failed = Promise.allSettled([
      checks.check(keys.session('string')),
      checks.check(keys.session('string')),
    ]);
    const fine = checks.check(keys.session('missing'));
    expect((await failed).map((r) => r.status)).toEqual(['rejected', 'rejected']);
    expect(await fine).toBe(true);
  });
});
