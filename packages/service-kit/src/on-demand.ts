/**
 * A Fastify instance of its own, built on the first request that needs it: for a rarely used part of a
 * service whose modules would otherwise take memory for the whole life of the process (the gateway's API
 * reference, the notifier's queue board). The service's own routes check the caller, then hand the
 * request to it with `inject`. A build that fails is tried again on the next request; the instance is
 * closed with `app`.
 */
import type { FastifyInstance } from 'fastify';

export function onDemandApp(
  app: FastifyInstance,
  build: () => Promise<FastifyInstance>,
): () => Promise<FastifyInstance> {
  let built: Promise<FastifyInstance> | null = null;
  app.addHook('onClose', async () => {
    if (built) await (await built.catch(() => null))?.close();
  });
  return () =>
    (built ??= build().catch((err: unknown) => {
      built = null;
      throw err;
    }));
}
