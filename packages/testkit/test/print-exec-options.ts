// Prints the NODE_OPTIONS this process was started with, the size of V8's young generation while it
// allocated a few million short-lived objects (the median of 200 samples, in MiB: the largest can be a
// moment's growth beyond the bound), whether `gc` is there, and the malloc settings in its environment
// (node-options.test.ts).
import { getHeapSpaceStatistics } from 'node:v8';

const sizes: number[] = [];
const kept: object[] = [];
for (let i = 0; i < 200; i++) {
  for (let j = 0; j < 20_000; j++) kept.push({ j, text: `x${j}` });
  if (kept.length > 100_000) kept.length = 0;
  const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  sizes.push(young?.space_size ?? 0);
}
sizes.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    nodeOptions: process.env.NODE_OPTIONS ?? '',
    youngMiB: (sizes[sizes.length >> 1] as number) / 2 ** 20,
    gc: typeof globalThis.gc,
    malloc: Object.fromEntries(Object.entries(process.env).filter(([name]) => name.startsWith('MALLOC_'))),
  }),
);
