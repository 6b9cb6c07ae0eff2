// Reference: a raw BullMQ worker whose processor does nothing, on the queue instance, in its own process.
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';

const connection = new Redis(process.env.REDIS_URL as string, { maxRetriesPerRequest: null });
const worker = new Worker(process.env.QUEUE as string, async () => {}, {
  connection,
  prefix: process.env.PREFIX as string,
  concurrency: Number(process.env.CONCURRENCY ?? 16),
});
await worker.waitUntilReady();
console.log(JSON.stringify({ msg: 'listening' }));
process.on('SIGTERM', async () => {
  await worker.close();
  connection.disconnect();
  process.exit(0);
});
