/**
 * The benchmark's results: JSON (everything), a Markdown table (what a person reads), and an SVG chart of
 * each target against its bound (met or not, at a glance).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Rejected } from './load.ts';
import type { FanOutResult } from './sse.ts';
import type { Judged, Verdict } from './verdict.ts';

export interface Row {
  group: 'reference' | 'atoll';
  name: string;
  unit: 'req/s' | 'ops/s' | 'jobs/s';
  /** Good answers per second: the median over its rounds. */
  rps: number;
  /** The rate of each round it ran in (every comparison it takes part in), in order. */
  rounds: number[];
  /** Medians over the rounds. */
  p50: number;
  p99: number;
  /** p99 at half the maximum rate (HTTP paths). */
  p99Half?: number;
  /** Good answers over all rounds. */
  requests: number;
  /** Answers that did not count, over all rounds (the sum of `rejected` for HTTP). */
  errors: number;
  rejected?: Rejected;
  /** Per request, on the Redis instance the path uses. */
  redis?: { instance: string; commands: number; roundTrips: number; byCommand?: Record<string, number> };
}

/** A bound that is not a ratio: Redis round trips per request, p99 at half load. */
export interface Check {
  what: string;
  value: number;
  bound: number;
  op: '≤';
  verdict: Extract<Verdict, 'met' | 'not met'>;
}

/**
 * A service's memory at rest, in MiB: its anonymous and file-backed resident pages (/proc), and from its
 * metrics what V8 holds for its heap (all spaces, used or not), of it live after the last full collection
 * and the code space, the external memory V8 is told about (Buffers), and the anonymous pages none of
 * those explain (malloc's arenas, thread stacks, native libraries' own memory; V8's pages not yet
 * touched make it read low).
 */
export interface IdleDetail {
  anonMiB: number | null;
  fileMiB: number | null;
  heapTotalMiB: number | null;
  heapLiveMiB: number | null;
  codeMiB: number | null;
  externalMiB: number | null;
  otherAnonMiB: number | null;
}

export interface Report {
  when: string;
  mode: string;
  rounds: number;
  seconds: number;
  connections: number;
  node: string;
  cpus: number;
  /** How the services ran: compiled (`dist`) or from their TypeScript sources. Absent in older reports. */
  build?: 'dist' | 'source';
  durationSeconds: number;
  rows: Row[];
  comparisons: Judged[];
  checks: Check[];
  sse?: FanOutResult;
  memory: Record<string, { pid: number | null; peakRssMiB: number | null }>;
  /** The stack's services' RSS (MiB) after `seconds` without load: once started and seeded, after the run. */
  idle?: {
    seconds: number;
    afterStart: Record<string, number | null>;
    afterRun?: Record<string, number | null>;
    /**
     * The services' anonymous pages summed, plus the largest one's file pages (Node's code, shared), in
     * MiB: the stack's memory with what the services share counted once. Absent in older reports.
     */
    afterStartSharedOnceMiB?: number;
    afterRunSharedOnceMiB?: number;
    /** What each service's resident set holds at those two points. Absent in older reports. */
    afterStartDetail?: Record<string, IdleDetail>;
    afterRunDetail?: Record<string, IdleDetail>;
  };
  soak?: unknown;
  /**
   * Requests sent straight to content carry assertions signed before each run (presigned.ts); `inline`
   * counts those signed during a run because its pool ran out. Absent in older reports.
   */
  presigned?: { inline: number };
  /** The gateway's identity assertions over the run, and the signatures they shared. Absent in older reports. */
  signing?: { assertions: number; signatures: number };
}

const byName = (rows: Row[], name: string) => rows.find((r) => r.name === name);

export function roundTripCheck(rows: Row[], a: string, bound: number): Check[] {
  const x = byName(rows, a);
  if (!x?.redis) return [];
  return [
    check(
      `${a}: ≤ ${bound} Redis round trip${bound === 1 ? '' : 's'} (${x.redis.instance})`,
      x.redis.roundTrips,
      bound,
    ),
  ];
}

/** p99 at half load of an HTTP path, at most `factor` times the reference's p99 at half load. */
export function halfLoadCheck(rows: Row[], a: string, reference: string, factor: number): Check[] {
  const x = byName(rows, a);
  const y = byName(rows, reference);
  if (x?.p99Half === undefined || y?.p99Half === undefined) return [];
  // autocannon reports whole milliseconds; a reference at 0 ms is taken as 1 ms.
  const bound = factor * Math.max(y.p99Half, 1);
  return [check(`${a}: p99 at half load ≤ ${factor}× ${reference}'s (ms)`, x.p99Half, bound)];
}

export const check = (what: string, value: number, bound: number): Check => ({
  what,
  value,
  bound,
  op: '≤',
  verdict: value <= bound ? 'met' : 'not met',
});

/** A ratio as a percentage, or as a multiple where the comparison is about multiples (a 2× target). */
export function formatRatio(x: number, c: { target?: number; upperBound?: number }): string {
  return (c.target ?? c.upperBound ?? 0) > 1 ? `${x.toFixed(2)}×` : `${Math.round(x * 100)}%`;
}

const verdictCell = (c: Judged) =>
  c.verdict === 'met' ? 'met' : c.verdict === 'shown' ? 'shown' : `**${c.verdict}**`;

function comparisonLines(report: Report): string[] {
  const f = formatRatio;
  if (report.comparisons.length === 0) return [];
  return [
    '| path | reference | target | bound | median | spread (min–max) | IQR | rates, median (path / reference) | verdict |',
    '|---|---|---:|---:|---:|---|---|---|---|',
    ...report.comparisons.map(
      (c) =>
        `| ${c.path} | ${c.reference} | ${c.target === undefined ? '' : `≥ ${f(c.target, c)}`} | ` +
        `${c.upperBound === undefined ? '' : `≤ ${f(c.upperBound, c)}`} | ${f(c.ratio.median, c)} | ` +
        `${f(c.ratio.min, c)}–${f(c.ratio.max, c)} | ${f(c.ratio.q1, c)}–${f(c.ratio.q3, c)} | ` +
        `${c.pathRate} / ${c.referenceRate} | ${verdictCell(c)}${c.suspectBecause ? `: ${c.suspectBecause}` : ''} |`,
    ),
  ];
}

const errorCell = (r: Row) =>
  r.rejected
    ? `${r.errors} (status ${r.rejected.status}, size ${r.rejected.size}, failed ${r.rejected.failed})`
    : String(r.errors);

const round2 = (x: number) => Math.round(x * 100) / 100;

export function markdown(report: Report): string {
  const lines = [
    `# atoll benchmark (${report.when}, ${report.mode})`,
    '',
    `${report.rounds} interleaved rounds of ${report.seconds} s per side, ${report.connections} connections, ` +
      `Node ${report.node}, ${report.cpus} CPUs, ${report.durationSeconds} s in all` +
      (report.build
        ? `, services ${report.build === 'dist' ? 'compiled (dist)' : 'from their sources'}`
        : '') +
      '. Load generator and ' +
      'servers share this machine. Rates count only 2xx answers of the expected body size.' +
      (report.presigned
        ? ` Requests sent straight to content carry assertions signed before each run, outside its timed window (${report.presigned.inline} signed during a run).`
        : ''),
    '',
    ...comparisonLines(report),
    '',
    '| group | path | rate (median) | each round | p50 ms | p99 ms | p99 ms at ½ rate | Redis cmd / round trips per request | errors |',
    '|---|---|---:|---|---:|---:|---:|---|---|',
    ...report.rows.map(
      (r) =>
        `| ${r.group} | ${r.name} | ${r.rps} ${r.unit} | ${r.rounds.join(', ')} | ${r.p50} | ${r.p99} | ` +
        `${r.p99Half ?? ''} | ${r.redis ? `${r.redis.commands} / ${r.redis.roundTrips} (${r.redis.instance})` : ''} | ${errorCell(r)} |`,
    ),
  ];
  if (report.checks.length) {
    lines.push('', '| check | measured | bound | verdict |', '|---|---:|---:|---|');
    for (const c of report.checks)
      lines.push(
        `| ${c.what} | ${round2(c.value)} | ${round2(c.bound)} | ${c.verdict === 'met' ? 'met' : '**not met**'} |`,
      );
  }
  if (report.signing) {
    const { assertions, signatures } = report.signing;
    lines.push(
      '',
      `The gateway made ${assertions} identity assertions under ${signatures} Ed25519 signatures over the run, ` +
        `${round2(assertions / Math.max(signatures, 1))} per signature (one per turn of its event loop, at most 64).`,
    );
  }
  if (report.sse) {
    const s = report.sse;
    lines.push(
      '',
      `Raw SSE fan-out (node:http, reference): ${s.streams} streams, ${s.events} events; until one client has an ` +
        `event p50 ${s.delivery.p50} ms / p99 ${s.delivery.p99} ms; until every client has it p50 ` +
        `${s.allDelivered.p50} ms / p99 ${s.allDelivered.p99} ms; per stream held ${s.perStreamKiB.rss} KiB RSS, ` +
        `${s.perStreamKiB.heap} KiB heap.`,
    );
  }
  const soak = report.soak as
    | {
        minutes: number;
        readRate: number;
        enqueueRate: number;
        enqueueMax?: number;
        notifierRate?: number;
        backlogAtEnd?: number;
        growth: Record<
          string,
          {
            rssPercent: number | null;
            heapPercent: number | null;
            rssMiB?: number | null;
            heapHeldMiB?: number | null;
            otherAnonMiB?: number | null;
          }
        >;
        samples: Array<{ cache: { usedMiB: number; maxMiB: number; evictedKeys: number } }>;
        met: boolean;
        audit?: {
          violations: number;
          counts: Record<string, number>;
          instances: Array<{ role: string; keys: number; truncated: boolean }>;
        };
      }
    | undefined;
  if (soak) {
    const last = soak.samples[soak.samples.length - 1];
    lines.push(
      '',
      `Soak: ${soak.minutes} min at ${Math.round(soak.readRate)} authenticated reads/s and ${Math.round(soak.enqueueRate)} enqueues/s; ` +
        `growth from the end of the warm-up (first fifth) to the end (target: under 10%): ${soak.met ? 'met' : '**not met**'}.` +
        (soak.notifierRate === undefined
          ? ''
          : ` The enqueues were half the lower of two rates, enqueueing alone (${Math.round(soak.enqueueMax ?? 0)} jobs/s) and the notifier's through a burst of jobs (${Math.round(soak.notifierRate)} jobs/s); ${soak.backlogAtEnd} jobs were not done when they stopped.`),
      `The cache instance ended at ${last?.cache.usedMiB} MiB of ${last?.cache.maxMiB} MiB maxmemory, ${last?.cache.evictedKeys} keys evicted.`,
      '',
      '| service | RSS growth | live heap growth (after a full GC) | RSS growth (MiB) | of it, V8 heap held | outside V8 |',
      '|---|---:|---:|---:|---:|---:|',
      ...Object.entries(soak.growth).map(
        ([name, g]) =>
          `| ${name} | ${g.rssPercent ?? 'n/a'}% | ${g.heapPercent ?? 'n/a'}% | ${g.rssMiB ?? 'n/a'} | ${g.heapHeldMiB ?? 'n/a'} | ${g.otherAnonMiB ?? 'n/a'} |`,
      ),
    );
    if (soak.audit) {
      const keys = soak.audit.instances
        .map((i) => `${i.role} ${i.keys}${i.truncated ? '+ (capped)' : ''}`)
        .join(', ');
      const found = Object.entries(soak.audit.counts)
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => `${kind} ${n}`)
        .join(', ');
      lines.push(
        '',
        `Key-space audit after the soak: keys ${keys}; violations: ${soak.audit.violations === 0 ? 'none' : `**${found}**`}.`,
      );
    }
  }
  const idle = report.idle;
  lines.push(
    '',
    `| service | peak RSS (MiB) |${idle ? ` idle ${idle.seconds} s after start and seeding | idle ${idle.seconds} s after the run |` : ''}`,
    `|---|---:|${idle ? '---:|---:|' : ''}`,
  );
  for (const [name, m] of Object.entries(report.memory))
    lines.push(
      `| ${name} | ${m.peakRssMiB ?? 'n/a'} |${idle ? ` ${idle.afterStart[name] ?? ''} | ${idle.afterRun?.[name] ?? ''} |` : ''}`,
    );
  if (idle?.afterStartDetail) {
    lines.push(
      '',
      `At rest (MiB): each service's anonymous and file pages, what V8 holds for its heap (of it live after the last full collection, n/a before the first, and code), the external memory V8 knows of, and the anonymous pages none of those explain (malloc, stacks, native libraries).`,
      '',
      '| service | when | anonymous | file | V8 heap held | live | code | external | other anonymous |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    );
    const points: Array<[string, Record<string, IdleDetail> | undefined]> = [
      ['after start', idle.afterStartDetail],
      ['after the run', idle.afterRunDetail],
    ];
    for (const name of Object.keys(idle.afterStartDetail))
      for (const [when, detail] of points) {
        const d = detail?.[name];
        if (!d) continue;
        const cells = [
          d.anonMiB,
          d.fileMiB,
          d.heapTotalMiB,
          d.heapLiveMiB,
          d.codeMiB,
          d.externalMiB,
          d.otherAnonMiB,
        ];
        lines.push(`| ${name} | ${when} | ${cells.map((c) => c ?? 'n/a').join(' | ')} |`);
      }
  }
  if (idle?.afterStartSharedOnceMiB !== undefined)
    lines.push(
      '',
      `For reference (the target is on the sum of RSS): the four services at rest with the pages they share, Node's own code, counted once (their anonymous pages plus the largest file-backed set): ${idle.afterStartSharedOnceMiB} MiB after start and seeding${idle.afterRunSharedOnceMiB === undefined ? '' : `, ${idle.afterRunSharedOnceMiB} MiB after the run`}.`,
    );
  return lines.join('\n');
}

const COLOURS: Record<Verdict, string> = {
  met: '#2e8b57',
  'not met': '#c0392b',
  suspect: '#e67e22',
  shown: '#7f8c8d',
};

/**
 * One bar per comparison with a target: its median as a share of the target (the dashed line), a
 * whisker from the lowest to the highest round; green met, red not met, orange suspect.
 */
export function chart(report: Report): string {
  const judged = report.comparisons.filter((c) => c.target !== undefined);
  const width = 1000;
  const rowHeight = 26;
  const left = 520;
  const scale = 300; // pixels for "exactly at the target"
  const height = 50 + judged.length * rowHeight;
  const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  const x = (ratio: number, target: number) => left + Math.min(ratio / target, 1.6) * scale;
  const bars = judged.map((c, i) => {
    const y = 40 + i * rowHeight;
    const target = c.target as number;
    const end = Math.max(left + 2, x(c.ratio.median, target));
    return [
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end" font-size="12">${esc(`${c.path} vs ${c.reference}`)}</text>`,
      `<rect x="${left}" y="${y}" width="${(end - left).toFixed(1)}" height="18" fill="${COLOURS[c.verdict]}"/>`,
      `<line x1="${x(c.ratio.min, target).toFixed(1)}" y1="${y + 9}" x2="${x(c.ratio.max, target).toFixed(1)}" y2="${y + 9}" stroke="#222" stroke-width="2"/>`,
      `<text x="${end + 6}" y="${y + 14}" font-size="12">${esc(`${formatRatio(c.ratio.median, c)} (${c.verdict})`)}</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${esc(`atoll benchmark targets (${report.when}): median of the rounds against the target line, whisker min–max`)}</text>`,
    `<line x1="${left + scale}" y1="32" x2="${left + scale}" y2="${height - 6}" stroke="#333" stroke-dasharray="4 3"/>`,
    ...bars,
    '</svg>',
  ].join('\n');
}

/** Writes `<name>.json`, `<name>.md` and `<name>.svg` (`latest` for a run, `soak` for a soak). */
export function writeReport(
  report: Report,
  dir: string,
  name = 'latest',
): { markdown: string; files: string[] } {
  mkdirSync(dir, { recursive: true });
  const md = markdown(report);
  const files = [join(dir, `${name}.json`), join(dir, `${name}.md`), join(dir, `${name}.svg`)];
  writeFileSync(files[0] as string, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(files[1] as string, `${md}\n\n![targets](${name}.svg)\n`);
  writeFileSync(files[2] as string, `${chart(report)}\n`);
  return { markdown: md, files };
}
