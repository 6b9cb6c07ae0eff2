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

/** The resident set size in bytes, or null when the process is gone (or not on Linux). */
export const rss = (pid: number) => statusField(pid, 'VmRSS');
/** The peak resident set size since the process started ("high water mark"). */
export const peakRss = (pid: number) => statusField(pid, 'VmHWM');

/**
 * The two parts of the resident set: anonymous pages (the process's own: V8's heap, malloc) and pages of
 * files (the Node binary's code and read-only data, which every Node process on the machine shares: 52–58
 * MiB of each service's RSS at rest). The sum of four services' RSS counts the shared pages four times.
 */
export const rssAnon = (pid: number) => statusField(pid, 'RssAnon');
export const rssFile = (pid: number) => statusField(pid, 'RssFile');

export const mib = (bytes: number | null) =>
  bytes === null ? null : Math.round((bytes / 1024 / 1024) * 10) / 10;
