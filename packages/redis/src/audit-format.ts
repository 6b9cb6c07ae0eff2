/** The key-space audit's report as text: a table per instance, the biggest keys, the violations. */
import { type AuditReport, VIOLATION_KINDS, violationTotal } from './audit.ts';

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  const s = ms / 1000;
  if (s < 1) return `${ms}ms`;
  if (s < 120) return `${s.toFixed(0)}s`;
  if (s < 7200) return `${(s / 60).toFixed(0)}m`;
  if (s < 172_800) return `${(s / 3600).toFixed(0)}h`;
  return `${(s / 86_400).toFixed(0)}d`;
}

/** Left-aligns the first column, right-aligns the others. */
function table(rows: string[][]): string[] {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

export function formatAuditReport(report: AuditReport): string {
  const out: string[] = [`key-space audit of prefix "${report.prefix}" (${report.durationMs} ms)`];
  for (const inst of report.instances) {
    const share = inst.maxmemory > 0 ? ` (${Math.round((inst.usedMemory / inst.maxmemory) * 100)}%)` : '';
    const bound = inst.maxmemory > 0 ? ` of ${formatBytes(inst.maxmemory)}${share}` : '';
    out.push(
      '',
      `redis-${inst.role}: ${inst.keys} keys${inst.truncated ? ' (scan stopped at the key cap)' : ''}, ` +
        `used_memory ${formatBytes(inst.usedMemory)}${bound}`,
    );
    if (inst.families.length === 0) continue;
    const rows = [['family', 'keys', 'memory', 'avg', 'ttl min', 'median', 'max', 'no ttl', 'biggest']];
    for (const f of inst.families) {
      rows.push([
        f.family,
        String(f.count),
        formatBytes(f.memoryBytes),
        formatBytes(f.avgBytes),
        f.ttlMs ? formatDuration(f.ttlMs.min) : '-',
        f.ttlMs ? formatDuration(f.ttlMs.median) : '-',
        f.ttlMs ? formatDuration(f.ttlMs.max) : '-',
        String(f.noTtl),
        formatBytes(f.biggest[0]?.bytes ?? 0),
      ]);
    }
    out.push(...table(rows).map((line) => `  ${line}`));
    out.push('  biggest keys:');
    for (const f of inst.families) {
      const list = f.biggest.map((b) => `${b.key} ${formatBytes(b.bytes)}`).join(', ');
      out.push(`    ${f.family}: ${list}`);
    }
  }
  const total = violationTotal(report);
  out.push('');
  if (total === 0) {
    out.push('no violations');
    return out.join('\n');
  }
  const byKind = VIOLATION_KINDS.filter((k) => report.counts[k] > 0).map((k) => `${k} ${report.counts[k]}`);
  out.push(`${total} violation${total === 1 ? '' : 's'}: ${byKind.join(', ')}`);
  for (const v of report.violations) {
    const where = v.key ? ` ${v.key}` : '';
    const family = v.family ? ` (${v.family})` : '';
    out.push(`  [${v.kind}] redis-${v.role}${where}${family}: ${v.detail}`);
  }
  if (report.violations.length < total) out.push(`  … ${total - report.violations.length} more not listed`);
  return out.join('\n');
}
