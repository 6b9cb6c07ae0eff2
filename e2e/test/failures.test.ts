/**
 * A Redis role going away: readiness of exactly the services that use it answers 503 naming it, the rest
 * stay ready, and everything recovers when it returns, without restarting any service.
 * redis-session down: authenticated requests get a quick 503 with a clear code, public routes keep working.
 */
import { closeRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { SessionStore } from '@atoll/session-store';
import type { Role, Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, redisOf, startTestStack } from './helpers.ts';

type Ready = { status: number; down: string[] };
async function ready(url: string): Promise<Ready> {
  const res = await fetch(`${url}/health/ready`);
  const body = (await res.json()) as { down?: string[] };
  return { status: res.status, down: body.down ?? [] };
}

describe('one Redis role down, then back', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('failures'));
  }, 90_000);
  afterAll(async () => {
    await dispose();
  });

  const users: Record<Role, Array<'gateway' | 'auth' | 'content' | 'notifier'>> = {
    cache: ['content'],
    session: ['gateway', 'auth'],
    queue: ['auth', 'content', 'notifier'],
  };

  for (const role of ['cache', 'queue'] as const) {
    it(`redis-${role} stopped: ${users[role].join(', ')} answer 503 naming it; the others stay ready; all recover`, async () => {
      await stack.redis[role].stop();
      for (const name of ['gateway', 'auth', 'content', 'notifier'] as const) {
        const r = await ready(stack.services[name].url);
        if (users[role].includes(name)) expect(r, name).toEqual({ status: 503, down: [`redis-${role}`] });
        else expect(r, name).toEqual({ status: 200, down: [] });
      }
      const through = await fetch(`${stack.gatewayUrl}/health/services`);
      expect(through.status).toBe(503);
      expect(((await through.json()) as { down: string[] }).down.sort()).toEqual(
        users[role].filter((n) => n !== 'gateway').sort(),
      );

      await stack.redis[role].restart();
      for (const name of users[role]) {
        expect(
          await eventually(async () => (await ready(stack.services[name].url)).status === 200),
          name,
        ).toBe(true);
      }
    });
  }

  it('redis-session stopped: authenticated requests 503 quickly, public ones still work; sessions survive', async () => {
    const client = await redisOf(stack, 'session');
    const store = new SessionStore(client, createKeys(stack.envOf('gateway').REDIS_KEY_PREFIX));
    const { token } = await store.create({ userId: 'u-1', username: 'alice', roles: ['user'] });
    await closeRedis(client);

    await stack.redis.session.stop();
    expect(await ready(stack.services.gateway.url)).toEqual({ status: 503, down: ['redis-session'] });

    const started = Date.now();
    const res = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
      headers: { authorization: `Token ${token}` },
    });
    const elapsed = Date.now() - started;
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({
      errors: { session: ['cannot be checked right now, try again shortly'] },
      code: 'SESSION_STORE_UNAVAILABLE',
    });
    // Fail fast, not hang: no offline queue in the gateway's client, no retry of the upstream's 503.
    // (A bound against hanging, not a speed claim: it is ~5 ms when idle.)
    expect(elapsed).toBeLessThan(1000);

    // A public route does not need the session store.
    const publicRes = await fetch(`${stack.gatewayUrl}/health/services`);
    expect((await publicRes.json()) as object).toMatchObject({ services: { content: { status: 'ready' } } });

    // redis-session keeps RDB snapshots: the session outlives the restart (SIGTERM saves).
    await stack.redis.session.restart();
    expect(
      await eventually(async () => {
        const r = await fetch(`${stack.gatewayUrl}/api/auth/session`, {
          headers: { authorization: `Token ${token}` },
        });
        return r.status === 200;
      }),
    ).toBe(true);
    expect((await ready(stack.services.auth.url)).status).toBe(200);
  });
});
