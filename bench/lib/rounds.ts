/**
 * Interleaved rounds: a path and its reference measured in turn (reference, path, reference, path, …),
 * each pair back to back, so that whatever else the machine does at a moment weighs on both sides of a
 * ratio alike. A result is the median of the per-round ratios, with their spread.
 */
import type { LoadResult } from './load.ts';

/** The spread of a set of values: its median, extremes and quartiles. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** First and third quartiles (linear between the closest ranks). */
  q1: number;
  q3: number;
}

/** Quantile `q` (0…1) of sorted values, linear between the closest ranks. */
function quantile(sorted: number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  const a = sorted[low] as number;
  return a + ((sorted[high] as number) - a) * (at - low);
}

export function spread(values: number[]): Spread {
  if (values.length === 0) throw new RangeError('spread of no values');
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: quantile(sorted, 0.5),
    min: sorted[0] as number,
    max: sorted[sorted.length - 1] as number,
    q1: quantile(sorted, 0.25),
    q3: quantile(sorted, 0.75),
  };
}

/** What one side of a comparison did in each round. */
export interface Rounds {
  reference: LoadResult[];
  path: LoadResult[];
  /** path rate ÷ reference rate, per round (0 when the reference had no good answer). */
  ratios: number[];
}

/**
 * `rounds` rounds of the reference then the path, back to back. `first` is told which round it is, so a
 * measurement can warm up in the first round only.
 */
export async function interleave(
  reference: (round: number) => Promise<LoadResult>,
  path: (round: number) => Promise<LoadResult>,
  rounds: number,
): Promise<Rounds> {
  const result: Rounds = { reference: [], path: [], ratios: [] };
  for (let round = 0; round < rounds; round += 1) {
    const ref = await reference(round);
    const own = await path(round);
    result.reference.push(ref);
    result.path.push(own);
    result.ratios.push(ref.rps > 0 ? own.rps / ref.rps : 0);
  }
  return result;
}
