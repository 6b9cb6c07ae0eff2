// A process that grows its heap by about 200 MiB, lets it all go, then rests for `REST_MS`: with
// `startRestGc` when `REST_GC=on`, without it otherwise. Prints its RSS at the start of the rest and at
// the end, in bytes, and how many collections ran (rest-gc.test.ts).
import { startRestGc } from '../src/rest-gc.ts';

const collections: object[] = [];
let held: Array<{ i: number; s: string }> | null = [];
for (let i = 0; i < 2_500_000; i++) held.push({ i, s: `item ${i}` });
held = null;
const rested = process.memoryUsage.rss();
if (process.env.REST_GC === 'on') {
  startRestGc({ log: { info: (obj) => collections.push(obj) }, intervalMs: 200 });
}
await new Promise((resolve) => setTimeout(resolve, Number(process.env.REST_MS)));
console.log(JSON.stringify({ rested, end: process.memoryUsage.rss(), collections: collections.length }));
process.exit(0);
