import { REQUEST_ID_HEADER } from '@atoll/service-kit';
import type { FastifyPluginAsync } from 'fastify';
import { request as undiciRequest } from 'undici';
import type { Upstream } from './table.ts';

/**
 * `GET /health/services`: asks every service behind the gateway for its readiness, with this request's
 * id, and reports each answer. 200 when all are ready, 503 naming the ones that are not. A service
 * that cannot be reached is `unreachable`, without the error (it names addresses and ports: it goes to
 * the log). Public, so counted in the anonymous rate-limit tier (rate-limit/plugin.ts).
 */
const healthServices: FastifyPluginAsync<{ upstreams: Record<Upstream, string>; timeoutMs: number }> = async (
  app,
  opts,
) => {
  app.get('/health/services', async (request, reply) => {
    const names = Object.keys(opts.upstreams) as Upstream[];
    const answers = await Promise.all(
      names.map(async (name) => {
        try {
          const res = await undiciRequest(`${opts.upstreams[name]}/health/ready`, {
            headers: { [REQUEST_ID_HEADER]: request.id },
            headersTimeout: opts.timeoutMs,
            bodyTimeout: opts.timeoutMs,
          });
          const body = (await res.body.json()) as Record<string, unknown>;
          return [name, { status: res.statusCode === 200 ? 'ready' : 'unavailable', ...body }] as const;
        } catch (err) {
          // The reason is for the log, not for whoever asks: this route is public.
          request.log.warn(
            { upstream: name, err: { message: (err as Error).message } },
            'service unreachable',
          );
          return [name, { status: 'unreachable' }] as const;
        }
      }),
    );
    const services = Object.fromEntries(answers);
    const down = answers.filter(([, a]) => a.status !== 'ready').map(([n]) => n);
    return reply
      .code(down.length ? 503 : 200)
      .send({ status: down.length ? 'unavailable' : 'ready', down, services });
  });
};

export default healthServices;
