/**
 * The reaper: a tiny process that outlives nothing but its parent. The parent writes `pid <n>` and
 * `dir <path>` lines to its stdin; when stdin closes (the parent exited, crashed or was SIGKILLed), it
 * kills every process and removes every folder it was told about. Normal cleanup happens in the parent;
 * this catches what an interrupted run leaves behind.
 *
 * Lines `forget pid <n>` / `forget dir <path>` remove an entry that the parent already cleaned up.
 */
import { rmSync } from 'node:fs';
import { createInterface } from 'node:readline';

const pids = new Set<number>();
const dirs = new Set<string>();

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const forget = line.startsWith('forget ');
  const [kind, ...rest] = (forget ? line.slice(7) : line).split(' ');
  const value = rest.join(' ');
  if (kind === 'pid') {
    const pid = Number(value);
    if (forget) pids.delete(pid);
    else pids.add(pid);
  } else if (kind === 'dir') {
    if (forget) dirs.delete(value);
    else dirs.add(value);
  }
});
lines.on('close', () => {
  for (const pid of pids) signal(pid, 'SIGKILL');
  // Give the kernel a moment to release files before removing folders.
  setTimeout(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  }, 200);
});

function signal(pid: number, sig: NodeJS.Signals) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
