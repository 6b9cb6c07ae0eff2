/**
 * `pnpm bench --profile`: each service of the stack runs with `--cpu-prof` into a folder of its own, and
 * once they have stopped (a process writes its profile as it exits), the profiles of each folder are
 * summed into one table: the functions with the most self time (time spent in the function itself, not
 * in what it calls), as a share of the time the service was busy. Idle time is left out; the garbage
 * collector and V8's own work ("(program)") stay in, because they are part of what a request costs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: CpuProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface HotFunction {
  /** `name file:line`, the file relative to the repository or to its package in node_modules. */
  where: string;
  selfMs: number;
  /** Share of the busy (non-idle) time, 0–1. */
  share: number;
}

export interface ProfileSummary {
  service: string;
  busyMs: number;
  top: HotFunction[];
}

/** A source location made short: repository-relative, or `package/file` for a dependency. */
export function shortLocation(url: string, root: string): string {
  const path = url.replace(/^file:\/\//, '');
  const inModules = path.lastIndexOf('/node_modules/');
  if (inModules >= 0) return path.slice(inModules + '/node_modules/'.length);
  const prefix = root.endsWith('/') ? root : `${root}/`;
  if (path.startsWith(prefix)) return path.slice(prefix.length);
  return path;
}

/** Self time per function over every profile given, the top `count`. */
export function summarize(service: string, profiles: CpuProfile[], root: string, count = 15): ProfileSummary {
  const self = new Map<string, number>();
  let busyUs = 0;
  const located = (frame: CpuProfileNode['callFrame']) =>
    `${frame.functionName || '(anonymous)'} ${shortLocation(frame.url, root)}:${frame.lineNumber + 1}`;
  for (const profile of profiles) {
    const byId = new Map(profile.nodes.map((node) => [node.id, node]));
    const parentOf = new Map<number, CpuProfileNode>();
    for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node);
    /**
     * A native function (a socket write…) is named with the nearest function outside Node's own code
     * that called it: the library or the service code that asked for it.
     */
    const name = (node: CpuProfileNode): string => {
      const frame = node.callFrame;
      if (frame.url) return located(frame);
      if (frame.functionName.startsWith('(')) return frame.functionName;
      let caller = parentOf.get(node.id);
      while (caller && (!caller.callFrame.url || caller.callFrame.url.startsWith('node:')))
        caller = parentOf.get(caller.id);
      return `${frame.functionName || '(native)'} ← ${caller ? located(caller.callFrame) : '?'}`;
    };
    profile.samples.forEach((id, i) => {
      const node = byId.get(id);
      const us = profile.timeDeltas[i] ?? 0;
      if (!node || node.callFrame.functionName === '(idle)') return;
      const where = name(node);
      self.set(where, (self.get(where) ?? 0) + us);
      busyUs += us;
    });
  }
  const top = [...self]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([where, us]) => ({ where, selfMs: Math.round(us / 1000), share: busyUs ? us / busyUs : 0 }));
  return { service, busyMs: Math.round(busyUs / 1000), top };
}

/** One summary per sub-folder of `dir` (one per service), from the `.cpuprofile` files in it. */
export function summarizeDir(dir: string, root: string): ProfileSummary[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => {
      const folder = join(dir, entry.name);
      const profiles = readdirSync(folder)
        .filter((file) => file.endsWith('.cpuprofile'))
        .map((file) => JSON.parse(readFileSync(join(folder, file), 'utf8')) as CpuProfile);
      return summarize(entry.name, profiles, root);
    })
    .filter((summary) => summary.busyMs > 0)
    .sort((a, b) => a.service.localeCompare(b.service));
}

export function profileMarkdown(summaries: ProfileSummary[], heading: string): string {
  const parts = [`# ${heading}`, ''];
  for (const s of summaries) {
    parts.push(`## ${s.service} (busy ${(s.busyMs / 1000).toFixed(1)} s)`, '');
    parts.push('| self time | share | function |', '|---:|---:|---|');
    for (const f of s.top)
      parts.push(
        `| ${f.selfMs} ms | ${(f.share * 100).toFixed(1)}% | \`${f.where.replaceAll('|', '\\|')}\` |`,
      );
    parts.push('');
  }
  return parts.join('\n');
}
