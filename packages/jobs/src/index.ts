export {
  EVENTS_MAX_LEN,
  type Handlers,
  type JobMeta,
  type JobName,
  type JobPayload,
  type JobPayloads,
  QUEUES,
  type QueueName,
  RETIRED_VERSIONS,
} from './catalog.ts';
export { InvalidJobPayloadError, Producer, payloadProblem } from './enqueue.ts';
export { retentionBounds, STREAM_NODE_ENTRIES } from './retention.ts';
export { removeRetiredJobs } from './retired.ts';
export { type CatalogWorkerOptions, createWorker, dispatcher } from './worker.ts';
