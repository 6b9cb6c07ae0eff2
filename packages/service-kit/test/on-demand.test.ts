import Fastify from 'fastify';
import { expect, it } from 'vitest';
import { onDemandApp } from '../src/index.ts';

it('builds the instance on first use, once, again after a failed build, and closes it with the app', async () => {
  const app = Fastify();
  let builds = 0;
  let closed = 0;
  const inner = onDemandApp(app, async () => {
    builds += 1;
    if (builds === 1) throw new Error('first build fails');
    const built = Fastify();
    built.get('/', async () => ({ built: builds }));
    built.addHook('onClose', async () => {
      closed += 1;
    });
    return built;
  });
  expect(builds).toBe(0);
  await expect(inner()).rejects.toThrow('first build fails');
  const [a, b] = await Promise.all([inner(), inner()]);
  expect(a).toBe(b);
  expect(builds).toBe(2);
  expect((await a.inject({ url: '/' })).json()).toEqual({ built: 2 });
  await app.close();
  expect(closed).toBe(1);
});
