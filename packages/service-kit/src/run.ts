/**
 * What every `main.ts` does: parse the configuration once, build the app, serve it, and shut down
 * gracefully. Bad configuration or a dependency that refuses to serve (a misconfigured Redis role, an
 * unreachable server) prints one line naming the problem and exits non-zero. On SIGTERM/SIGINT the
 * service drains (`drainAndClose`) and exits 0; if that takes longer than the grace period it exits 1. An
 * uncaught error is logged, the app closed at once (no drain), exit 1. Once serving, a service at rest
 * gives back the memory it grew under load (`startRestGc`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import closeWithGrace from 'close-with-grace';
import type { FastifyInstance } from 'fastify';
import { startRestGc } from './rest-gc.ts';

export interface RunOptions<C> {
  service: string;
  loadConfig: () => C;
  buildApp: (config: C) => Promise<FastifyInstance>;
  listen: (config: C) => { host: string; port: number };
  /** The whole shutdown, drain included, must end within this; else exit 1. */
  graceMs: (config: C) => number;
  /** How long to keep serving, not ready, before the server stops accepting (default 0). */
  drainMs?: (config: C) => number;
}

/**
 * A graceful shutdown, in order:
 * 1. `/health/ready` answers 503 `draining` at once, and every response from now on carries
 *    `Connection: close` (so clients' keep-alive connections end with their current response);
 * 2. for `drainMs` the server keeps serving, for load balancers that learn about the drain by polling
 *    readiness (0 natively and on Kubernetes, whose preStop sleep does this before the signal);
 * 3. `app.close()`: the listening socket closes (new connections are refused, which the gateway retries
 *    on another instance), idle keep-alive connections are closed, in-flight requests finish (a live
 *    stream is ended by its route's `preClose`), and only then the plugins' `onClose` hooks close Redis,
 *    PostgreSQL and the workers.
 */
export async function drainAndClose(app: FastifyInstance, drainMs: number): Promise<void> {
  app.health.drain();
  if (drainMs > 0) await sleep(drainMs);
  await app.close();
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
  const drainMs = opts.drainMs?.(config) ?? 0;
  let stopRestGc = () => {};
  closeWithGrace(
    { delay: opts.graceMs(config), logger: { error: (m: unknown) => app.log.error(m) } },
    async ({ signal, err }) => {
      stopRestGc();
      if (err) {
        app.log.error({ err }, 'uncaught error, closing');
        await app.close();
      } else {
        app.log.info({ signal, drainMs }, 'shutting down: draining');
        await drainAndClose(app, drainMs);
      }
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
  stopRestGc = startRestGc({ log: app.log });
}
