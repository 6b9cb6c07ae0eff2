import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Everything the test kit starts or creates is "owned": registered with a reaper process that kills and
 * removes it if this process dies without cleaning up (a failed run, Ctrl-C, a SIGKILLed worker).
 */
let reaper: ChildProcess | undefined;

function reaperProcess(): ChildProcess {
  if (reaper && reaper.exitCode === null) return reaper;
  const script = fileURLToPath(new URL('./reaper.ts', import.meta.url));
  reaper = spawn(process.execPath, [script], { stdio: ['pipe', 'ignore', 'inherit'], detached: true });
  reaper.unref();
  // The pipe must not keep this process alive either.
  (reaper.stdin as unknown as { unref?: () => void }).unref?.();
  return reaper;
}

function tell(line: string) {
  reaperProcess().stdin?.write(`${line}\n`);
}

export function ownProcess(child: ChildProcess): void {
  if (child.pid === undefined) return;
  const pid = child.pid;
  tell(`pid ${pid}`);
  child.once('exit', () => tell(`forget pid ${pid}`));
}

/** A fresh temporary folder, removed by `removeOwnedDir` or by the reaper. */
export async function ownedTempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `atoll-${label}-`));
  tell(`dir ${dir}`);
  return dir;
}

export function removeOwnedDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tell(`forget dir ${dir}`);
}
