/** Memory of a process, read from /proc (Linux): its resident set now and at its peak. */
import { readFileSync } from 'node:fs';

function statusField(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1];
    return kb ? Number(kb) * 1024 : null;
  } catch {
    return null;
  }
}

/** The highest resident set read here of each process (`rss`), for `peakRss`. */
const highestRead = new Map<number, number>();

/** The resident set size in bytes, or null when the process is gone (or not on Linux). */
export function rss(pid: number): number | null {
  const bytes = statusField(pid, 'VmRSS');
  if (bytes !== null && bytes > (highestRead.get(pid) ?? 0)) highestRead.set(pid, bytes);
  return bytes;
}

/**
 * The peak resident set size since the process started: the kernel's high-water mark (VmHWM), or the
 * highest RSS `rss` read of it, when that is higher. The kernel's mark can be below an RSS read before
 * it: in one run, a service read at 136.7 MiB at rest, and its VmHWM a moment later was 136.5.
 */
export function peakRss(pid: number): number | null {
  const mark = statusField(pid, 'VmHWM');
  return mark === null ? null : Math.max(mark, highestRead.get(pid) ?? 0);
}

/**
 * The two parts of the resident set: anonymous pages (the process's own: V8's heap, malloc) and pages of
 * files (the Node binary's code and read-only data, which every Node process on the machine shares: 52–58
 * MiB of each service's RSS at rest). The sum of four services' RSS counts the shared pages four times.
 */
export const rssAnon = (pid: number) => statusField(pid, 'RssAnon');
export const rssFile = (pid: number) => statusField(pid, 'RssFile');

export const mib = (bytes: number | null) =>
  bytes === null ? null : Math.round((bytes / 1024 / 1024) * 10) / 10;

/** A service's V8 memory from its Prometheus metrics, in bytes (null: not served or not yet known). */
export interface V8Memory {
  /** In use right after the last full collection (`nodejs_heap_live_bytes`; null before the first). */
  live: number | null;
  /** In use now, garbage included. */
  used: number | null;
  /** What V8 holds for its heap: every space's pages, used or not. */
  total: number | null;
  /** Of `total`, the space for compiled code. */
  code: number | null;
  /** Memory of objects outside the heap that V8 is told about (Buffers, ArrayBuffers). */
  external: number | null;
}

/** Reads `V8Memory` from `${url}/metrics` with the metrics token; all null when it cannot. */
export async function v8Memory(url: string, token: string): Promise<V8Memory> {
  try {
    const res = await fetch(`${url}/metrics`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(2000),
    });
    const text = await res.text();
    const read = (name: string, labels = '(?:\\{[^}]*\\})?') => {
      const bytes = new RegExp(`^${name}${labels} (\\d+(?:\\.\\d+)?)`, 'm').exec(text)?.[1];
      return bytes && Number(bytes) > 0 ? Number(bytes) : null;
    };
    return {
      live: read('nodejs_heap_live_bytes'),
      used: read('nodejs_heap_size_used_bytes'),
      total: read('nodejs_heap_size_total_bytes'),
      code: read('nodejs_heap_space_size_total_bytes', '\\{[^}]*space="code"[^}]*\\}'),
      external: read('nodejs_external_memory_bytes'),
    };
  } catch {
    return { live: null, used: null, total: null, code: null, external: null };
  }
}
