import { type ChildProcess, spawn } from 'node:child_process';
import { ownProcess } from './owned.ts';

export interface ReadyProcess {
  child: ChildProcess;
  /** Everything it has written to stdout and stderr so far. */
  output: () => string;
}

/**
 * Starts a server process of this test run (in its own process group, reaped if the run dies) and
 * resolves once its output shows `ready`; rejects with that output if it exits or fails to start first.
 */
export function spawnUntilReady(
  what: string,
  command: string,
  args: string[],
  ready: string | RegExp,
  env?: NodeJS.ProcessEnv,
): Promise<ReadyProcess> {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(env ? { env } : {}),
  });
  ownProcess(child);
  let log = '';
  const isReady = () => (typeof ready === 'string' ? log.includes(ready) : ready.test(log));
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      log += chunk.toString();
      if (isReady()) resolve({ child, output: () => log });
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) =>
      reject(new Error(`${what} exited with ${code} before it was ready:\n${log}`)),
    );
    child.once('error', reject);
  });
}
