/**
 * A port found free can be taken before redis-server binds it (another test's server): the server is
 * started again on ports picked anew. Here the cluster bus port is held by a listener of this test.
 */
import { createServer, type Server } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { clusterNodeArgs } from '../src/cluster.ts';
import { freePort } from '../src/ports.ts';
import { RedisServer } from '../src/redis-server.ts';

let holder: Server | undefined;
let server: RedisServer | undefined;
afterAll(async () => {
  await server?.dispose();
  holder?.close();
});

it('starts a cluster node on another bus port when the one it was given is taken', async () => {
  const taken = await freePort();
  holder = createServer();
  await new Promise<void>((resolve) => holder?.listen(taken, '127.0.0.1', resolve));
  const args = (await clusterNodeArgs()).map((a, i, all) =>
    all[i - 1] === '--cluster-port' ? String(taken) : a,
  );
  server = await RedisServer.start('cache', { args });
  expect(server.running).toBe(true);
  expect(server.log).not.toContain('Address already in use');
});
