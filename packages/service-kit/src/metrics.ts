/**
 * Prometheus metrics for every service (`prom-client`), one registry per app (never the global one, so
 * several apps in one test process do not mix). Every request is counted by route template and status
 * and timed in a histogram; a service adds its own metrics on `app.metrics.registry` (the gateway's
 * rate-limit and upstream counters, content's cache layers, the notifier's queues) — as metrics it
 * updates itself or as `collect()` callbacks read at scrape time.
 *
 * `GET /metrics` is not public: it answers only `Authorization: Bearer <METRICS_TOKEN>` (compared in
 * constant time; 401 otherwise), and without a token configured the route does not exist. The same
 * token on every service lets one scrape job read them all.
 *
 * Beside prom-client's defaults, `nodejs_heap_live_bytes`: V8's heap in use right after the last full
 * (mark-compact) collection. `nodejs_heap_size_used_bytes` is wherever the sawtooth of garbage between
 * collections happens to be when it is scraped (a busy service's swings between 40 and 180 MiB); the live
 * heap is what a leak grows.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants, type PerformanceEntry, PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { AppError } from './errors.ts';

export { Counter, Gauge, Histogram, type Registry };

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's metrics: register more with `registers: [app.metrics.registry]`. */
    metrics: { registry: Registry };
  }
}

export interface MetricsOptions {
  service: string;
  /** The bearer token `GET /metrics` requires; null or undefined: the route is not served. */
  token?: string | null | undefined;
  /** More metrics, registered on this app's registry once it exists (e.g. a queue's counts). */
  collectors?: ReadonlyArray<(registry: Registry) => void>;
}

/** Routes that did not match anything share one label, so a 404 flood cannot grow the label set. */
const UNMATCHED = 'unmatched';

function routeLabel(request: FastifyRequest): string {
  return request.routeOptions.url ?? UNMATCHED;
}

/**
 * The heap in use after each full collection, read when V8 reports the collection (the observer runs
 * on the event loop soon after it, so a few allocations may come in between). 0 until the first one.
 */
function liveHeapGauge(registry: Registry): () => void {
  const gauge = new Gauge({
    name: 'nodejs_heap_live_bytes',
    help: "V8's heap in use right after the last full (mark-compact) collection, in bytes; 0 before the first",
    registers: [registry],
  });
  gauge.set(0);
  const observer = new PerformanceObserver((list) => {
    const major = list
      .getEntries()
      .some(
        (e) =>
          (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ===
          constants.NODE_PERFORMANCE_GC_MAJOR,
      );
    if (major) gauge.set(getHeapStatistics().used_heap_size);
  });
  observer.observe({ entryTypes: ['gc'] });
  return () => observer.disconnect();
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

const metricsPlugin: FastifyPluginAsync<MetricsOptions> = async (app, opts) => {
  const registry = new Registry();
  registry.setDefaultLabels({ service: opts.service });
  collectDefaultMetrics({ register: registry });
  const stopLiveHeap = liveHeapGauge(registry);
  app.addHook('onClose', (_app, done) => {
    stopLiveHeap();
    done();
  });
  app.decorate('metrics', { registry });

  const requests = new Counter({
    name: 'http_requests_total',
    help: 'Requests answered, by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'Time from receiving a request to sending its response, by method and route template',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  app.addHook('onResponse', (request, reply, done) => {
    const route = routeLabel(request);
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    duration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
    done();
  });
  for (const collector of opts.collectors ?? []) collector(registry);

  if (!opts.token) return;
  const expected = digest(`Bearer ${opts.token}`);
  app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
    // Digests have equal lengths, so the comparison takes the same time whatever was sent.
    const sent = digest(request.headers.authorization ?? '');
    if (!timingSafeEqual(sent, expected)) throw new AppError('METRICS_UNAUTHORIZED');
    return reply.type(registry.contentType).send(await registry.metrics());
  });
};

export const metrics = fp(metricsPlugin, { name: '@atoll/metrics', fastify: '5.x' });
