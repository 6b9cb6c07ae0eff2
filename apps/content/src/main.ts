import { runService } from '@atoll/service-kit';
import { buildApp } from './app.ts';
import { loadConfig } from './config.ts';

await runService({
  service: 'content',
  loadConfig,
  buildApp,
  listen: (c) => ({ host: c.host, port: c.port }),
  graceMs: (c) => c.shutdownGraceMs,
  drainMs: (c) => c.shutdownDrainMs,
});
