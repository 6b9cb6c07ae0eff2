import { REQUEST_ID_HEADER } from '@atoll/service-kit';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { request as undiciRequest } from 'undici';
import type { Upstream } from './table.ts';

type Answer = { status: string; [field: string]: unknown };

/**
 * `GET /health/services`: asks every service behind the gateway for its readiness, with this request's
 * id, and reports each answer. 200 when all are ready, 503 naming the ones that are not. A service
 * that cannot be reached is `unreachable`, without the error (it names addresses and ports: it goes to
 * the log). A service that runs as several instances is asked on each: it is ready when one of them is,
 * and `instances` lists their answers in the order of its variable (never their addresses). Public, so
 * counted in the anonymous rate-limit tier (rate-limit/plugin.ts).
 */
const healthServices: FastifyPluginAsync<{
  upstreams: Record<Upstream, string[]>;
  timeoutMs: number;
}> = async (app, opts) => {
  const ask = async (request: FastifyRequest, name: Upstream, url: string): Promise<Answer> => {
    try {
      const res = await undiciRequest(`${url}/health/ready`, {
        headers: { [REQUEST_ID_HEADER]: request.id },
        headersTimeout: opts.timeoutMs,
        bodyTimeout: opts.timeoutMs,
      });
      const body = (await res.body.json()) as Record<string, unknown>;
      return { status: res.statusCode === 200 ? 'ready' : 'unavailable', ...body };
    } catch (err) {
      // The reason is for the log, not for whoever asks: this route is public.
      request.log.warn({ upstream: name, err: { message: (err as Error).message } }, 'service unreachable');
      return { status: 'unreachable' };
    }
  };

  app.get('/health/services', async (request, reply) => {
    const names = Object.keys(opts.upstreams) as Upstream[];
    const answers = await Promise.all(
      names.map(async (name) => {
        const instances = await Promise.all(opts.upstreams[name].map((url) => ask(request, name, url)));
        if (instances.length === 1) return [name, instances[0] as Answer] as const;
        const ready = instances.some((a) => a.status === 'ready');
        const status = ready
          ? 'ready'
          : instances.every((a) => a.status === 'unreachable')
            ? 'unreachable'
            : 'unavailable';
        return [name, { status, instances }] as const;
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
