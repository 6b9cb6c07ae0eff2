// Prints the NODE_OPTIONS this process was started with, and the largest V8's young generation grew
// while it allocated a few million short-lived objects, in MiB, whether `gc` is there, and the malloc
// settings in its environment (node-options.test.ts).
import { getHeapSpaceStatistics } from 'node:v8';

let peak = 0;
const kept: object[] = [];
for (let i = 0; i < 200; i++) {
  for (let j = 0; j < 20_000; j++) kept.push({ j, text: `x${j}` });
  if (kept.length > 100_000) kept.length = 0;
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  peak = Math.max(peak, young?.space_size ?? 0);
}
console.log(
  JSON.stringify({
    nodeOptions: process.env.NODE_OPTIONS ?? '',
    youngMiB: peak / 2 ** 20,
    gc: typeof globalThis.gc,
    malloc: Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MALLOC_'))),
  }),
);
