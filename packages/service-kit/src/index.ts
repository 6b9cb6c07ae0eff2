export { type BasePluginOptions, DRAINING_HEADER, default as base, MAX_URL_LENGTH } from './base.ts';
export { errorChain, NEVER_CONNECTED } from './connection-errors.ts';
export {
  AppError,
  ERROR_CATALOG,
  type ErrorBody,
  type ErrorCode,
  errorBody,
  installErrorHandling,
} from './errors.ts';
export { type BaseOptions, fastifyOptions, MAX_PARAM_LENGTH, REQUEST_ID_HEADER } from './fastify-options.ts';
export { default as health, type HealthCheck } from './health.ts';
export {
  type DbPluginOptions,
  database,
  dbOf,
  type RedisClients,
  type RedisPluginOptions,
  redisRoles,
} from './infra.ts';
export { type KeyAuditOptions, keyAudit } from './key-audit.ts';
export { Counter, Gauge, Histogram, type MetricsOptions, metrics, type Registry } from './metrics.ts';
export { onDemandApp } from './on-demand.ts';
export { INTERNAL_OPENAPI_PATH, openApi } from './openapi.ts';
export { REST_GC_DEFAULTS, type RestGcOptions, startRestGc } from './rest-gc.ts';
export { drainAndClose, type RunOptions, runService } from './run.ts';
