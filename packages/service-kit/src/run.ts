/**
 * What every `main.ts` does: parse the configuration once, build the app, serve it, and shut down
 * gracefully. Bad configuration or a dependency that refuses to serve (a misconfigured Redis role, an
 * unreachable server) prints one line naming the problem and exits non-zero. On SIGTERM/SIGINT the server
 * stops accepting connections, finishes in-flight requests, closes every client, and exits 0; if that
 * takes longer than the grace period it exits 1. An uncaught error is logged, the app closed, exit 1.
 */
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';

export interface RunOptions<C> {
  service: string;
  loadConfig: () => C;
  buildApp: (config: C) => Promise<FastifyInstance>;
  listen: (config: C) => { host: string; port: number };
  graceMs: (config: C) => number;
}

export async function runService<C>(opts: RunOptions<C>): Promise<void> {
  let config: C;
  try {
    config = opts.loadConfig();
  } catch (err) {
    process.stderr.write(`${opts.service}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  let app: FastifyInstance;
  try {
    app = await opts.buildApp(config);
  } catch (err) {
    process.stderr.write(`${opts.service}: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  closeWithGrace(
    { delay: opts.graceMs(config), logger: { error: (m: unknown) => app.log.error(m) } },
    async ({ signal, err }) => {
      if (err) app.log.error({ err }, 'uncaught error, closing');
      else app.log.info({ signal }, 'shutting down');
      await app.close();
      app.log.info('closed');
    },
  );
  try {
    await app.listen(opts.listen(config));
  } catch (err) {
    app.log.error({ err }, 'cannot listen');
    await app.close();
    process.exit(1);
  }
}
