/**
 * Verdicts on the comparisons of targets.ts: met, not met, suspect (above the physical bound of its own
 * comparison or of another comparison of the same path), or shown (no target).
 */
import type { Comparison } from '../targets.ts';
import { type Spread, spread } from './rounds.ts';

export type Verdict = 'met' | 'not met' | 'suspect' | 'shown';

export interface Measured extends Comparison {
  /** path ÷ reference in each round. */
  ratios: number[];
  /** Median rates of each side over this comparison's rounds. */
  pathRate: number;
  referenceRate: number;
}

export interface Judged extends Measured {
  ratio: Spread;
  verdict: Verdict;
  /** For a suspect: which bound was passed. */
  suspectBecause?: string;
}

const overBound = (c: Measured) => c.upperBound !== undefined && spread(c.ratios).median > c.upperBound;

/** Judges every comparison; a path over any of its bounds makes all of its results suspect. */
export function judge(measured: Measured[]): Judged[] {
  const reasons = new Map<string, string>();
  for (const c of measured.filter(overBound)) {
    const median = spread(c.ratios).median;
    const reason = `${median.toFixed(2)}× ${c.reference}, above its bound of ${c.upperBound}×`;
    reasons.set(c.path, reasons.has(c.path) ? `${reasons.get(c.path)}; ${reason}` : reason);
  }
  return measured.map((c) => {
    const ratio = spread(c.ratios);
    const suspectBecause = reasons.get(c.path);
    if (suspectBecause) return { ...c, ratio, verdict: 'suspect', suspectBecause };
    if (c.target === undefined) return { ...c, ratio, verdict: 'shown' };
    return { ...c, ratio, verdict: ratio.median >= c.target ? 'met' : 'not met' };
  });
}
