/**
 * Server-Timing (database time and query count) is a hint for an attacker: a service's header reaches a
 * client through the gateway only when the gateway's SERVER_TIMING is set (buildApp, real
 * redis-session, an upstream that sends the header as a service with SERVER_TIMING does).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from './helpers.ts';

describe('Server-Timing through the gateway', () => {
  let off: TestGateway;
  let on: TestGateway;
  beforeAll(async () => {
    off = await startGateway();
    on = await startGateway({ SERVER_TIMING: 'true' });
  });
  afterAll(async () => {
    await off.close();
    await on.close();
  });

  it('is dropped by default, whatever the service sends', async () => {
    expect(off.config.serverTiming).toBe(false);
    const res = await off.app.inject({ url: '/api/tags/timed' });
    expect(res.json()).toEqual({ timed: true });
    expect(res.headers['server-timing']).toBeUndefined();
  });

  it('passes through with SERVER_TIMING=true (development, tests)', async () => {
    const res = await on.app.inject({ url: '/api/tags/timed' });
    expect(res.headers['server-timing']).toBe('db;dur=1.2;desc="2 queries"');
  });
});
