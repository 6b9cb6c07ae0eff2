/**
 * The benchmark's results: JSON (everything), a Markdown table (what a person reads), and an SVG chart of
 * each target against its bound (met or not, at a glance).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Row {
  group: 'reference' | 'atoll';
  name: string;
  unit: 'req/s' | 'ops/s' | 'jobs/s';
  rps: number;
  p50: number;
  p99: number;
  /** p99 at half the maximum rate (HTTP paths). */
  p99Half?: number;
  requests: number;
  errors: number;
  /** The row this one is compared with. */
  reference?: string;
  /** Per request, on the Redis instance the path uses. */
  redis?: { instance: string; commands: number; roundTrips: number; byCommand?: Record<string, number> };
}

export interface Target {
  what: string;
  value: number;
  bound: number;
  op: '≥' | '≤';
  /** How to show value and bound: a percentage, a multiple, or a count. */
  as: 'percent' | 'times' | 'count';
  met: boolean;
}

export interface Report {
  when: string;
  mode: string;
  seconds: number;
  connections: number;
  node: string;
  cpus: number;
  durationSeconds: number;
  rows: Row[];
  targets?: Target[];
  memory: Record<string, { pid: number | null; peakRssMiB: number | null }>;
  soak?: unknown;
}

const byName = (rows: Row[], name: string) => rows.find((r) => r.name === name);

/** `a` against `b` (requests per second), as a target. Missing rows make no target. */
export function ratioTarget(rows: Row[], a: string, b: string, op: Target['op'], bound: number): Target[] {
  const x = byName(rows, a);
  const y = byName(rows, b);
  if (!x || !y || y.rps === 0) return [];
  const value = x.rps / y.rps;
  const as = bound >= 1 ? 'times' : 'percent';
  return [
    { what: `${a} ${op} ${format(bound, as)} of ${b}`, value, bound, op, as, met: compare(value, op, bound) },
  ];
}

export function roundTripTarget(rows: Row[], a: string, bound: number): Target[] {
  const x = byName(rows, a);
  if (!x?.redis) return [];
  const value = x.redis.roundTrips;
  return [
    {
      what: `${a}: ≤ ${bound} Redis round trip${bound === 1 ? '' : 's'} (${x.redis.instance})`,
      value,
      bound,
      op: '≤',
      as: 'count',
      met: compare(value, '≤', bound),
    },
  ];
}

/** p99 at half load of an HTTP path, at most `factor` times the reference's p99 at half load. */
export function halfLoadTarget(rows: Row[], a: string, reference: string, factor: number): Target[] {
  const x = byName(rows, a);
  const y = byName(rows, reference);
  if (x?.p99Half === undefined || y?.p99Half === undefined) return [];
  // autocannon reports whole milliseconds; a reference at 0 ms is taken as 1 ms.
  const bound = factor * Math.max(y.p99Half, 1);
  return [
    {
      what: `${a}: p99 at half load ≤ ${factor}× ${reference}'s (ms)`,
      value: x.p99Half,
      bound,
      op: '≤',
      as: 'count',
      met: compare(x.p99Half, '≤', bound),
    },
  ];
}

const compare = (value: number, op: Target['op'], bound: number) =>
  op === '≥' ? value >= bound : value <= bound;

function format(x: number, as: Target['as']): string {
  if (as === 'percent') return `${Math.round(x * 100)}%`;
  if (as === 'times') return `${x.toFixed(2)}×`;
  return String(Math.round(x * 100) / 100);
}

export function markdown(report: Report): string {
  const ref = (r: Row) => {
    const base = r.reference ? byName(report.rows, r.reference) : undefined;
    return base && base.rps > 0 ? `${Math.round((r.rps / base.rps) * 100)}% of ${r.reference}` : '';
  };
  const lines = [
    `# atoll benchmark (${report.when}, ${report.mode})`,
    '',
    `${report.seconds} s per path, ${report.connections} connections, Node ${report.node}, ${report.cpus} CPUs, ` +
      `${report.durationSeconds} s in all. Load generator and servers share this machine.`,
    '',
    '| group | path | rate | p50 ms | p99 ms | p99 ms at ½ rate | vs reference | Redis cmd / round trips per request |',
    '|---|---|---:|---:|---:|---:|---|---|',
    ...report.rows.map(
      (r) =>
        `| ${r.group} | ${r.name} | ${r.rps} ${r.unit} | ${r.p50} | ${r.p99} | ${r.p99Half ?? ''} | ${ref(r)} | ${
          r.redis ? `${r.redis.commands} / ${r.redis.roundTrips} (${r.redis.instance})` : ''
        } |${r.errors ? ` ${r.errors} errors` : ''}`,
    ),
  ];
  if (report.targets?.length) {
    lines.push('', '| target | measured | met |', '|---|---:|---|');
    for (const t of report.targets)
      lines.push(`| ${t.what} | ${format(t.value, t.as)} | ${t.met ? 'yes' : '**no**'} |`);
  }
  const soak = report.soak as
    | {
        minutes: number;
        readRate: number;
        enqueueRate: number;
        growth: Record<string, { rssPercent: number | null; heapPercent: number | null }>;
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
        `growth from the end of the warm-up (first fifth) to the end (target: under 10%): ${soak.met ? 'met' : '**not met**'}.`,
      `The cache instance ended at ${last?.cache.usedMiB} MiB of ${last?.cache.maxMiB} MiB maxmemory, ${last?.cache.evictedKeys} keys evicted.`,
      '',
      '| service | RSS growth | heap growth |',
      '|---|---:|---:|',
      ...Object.entries(soak.growth).map(
        ([name, g]) => `| ${name} | ${g.rssPercent ?? 'n/a'}% | ${g.heapPercent ?? 'n/a'}% |`,
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
  lines.push('', '| service | peak RSS (MiB) |', '|---|---:|');
  for (const [name, m] of Object.entries(report.memory)) lines.push(`| ${name} | ${m.peakRssMiB ?? 'n/a'} |`);
  return lines.join('\n');
}

/** One bar per target: its measured value as a share of its bound, green when met, red when not. */
export function chart(report: Report): string {
  const targets = report.targets ?? [];
  const width = 900;
  const rowHeight = 26;
  const left = 430;
  const scale = 300; // pixels for "exactly at the bound"
  const height = 50 + targets.length * rowHeight;
  const esc = (s: string) => s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  const bars = targets.map((t, i) => {
    const y = 40 + i * rowHeight;
    // For "≥" a longer bar is better; for "≤" the bar shows the bound's share of the value, so longer is
    // better there too, and the line at `scale` is always the target.
    const share = t.op === '≥' ? t.value / t.bound : t.value === 0 ? 2 : t.bound / t.value;
    const w = Math.max(2, Math.min(share, 1.6) * scale);
    return [
      `<text x="${left - 8}" y="${y + 14}" text-anchor="end" font-size="12">${esc(t.what)}</text>`,
      `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="18" fill="${t.met ? '#2e8b57' : '#c0392b'}"/>`,
      `<text x="${left + w + 6}" y="${y + 14}" font-size="12">${esc(format(t.value, t.as))}</text>`,
    ].join('');
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="14" font-weight="bold">${esc(`atoll benchmark targets (${report.when}): bar length against the target line`)}</text>`,
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
