export {
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
export { removeRetiredJobs } from './retired.ts';
export { type CatalogWorkerOptions, createWorker, dispatcher } from './worker.ts';
