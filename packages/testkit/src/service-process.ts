import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { ownProcess } from './owned.ts';
import { repoRoot } from './paths.ts';
import { freePort } from './ports.ts';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number; reqId?: string };

/**
 * The Node options every atoll service runs with, here as in its container image
 * (deploy/docker/service.Dockerfile) and its package's `start` script; a test keeps the three equal.
 * V8's young generation grows to 16 MiB per semi-space and more under a busy service's allocation rate,
 * and the pages it leaves behind are what drove each service's peak RSS: at most 4 MiB per semi-space
 * holds them down (see bench/README.md, "Memory"). `--expose-gc` lets a service at rest run a full
 * collection that gives back what it grew under load (@atoll/service-kit `startRestGc`). One V8 worker
 * thread instead of four: fewer threads whose stacks and allocations stay resident. Options given in
 * NODE_OPTIONS come after these, so they win.
 */
export const SERVICE_NODE_OPTIONS = '--max-semi-space-size=4 --expose-gc --v8-pool-size=1';

/**
 * The environment every atoll service runs with, kept equal to the container image's and the `start`
 * scripts' by the same test. glibc's malloc keeps what a process freed for reuse: in arenas of their own
 * for its threads (two at most here), and, below its mmap threshold, in the heap it grows. The gateway
 * compiles undici's HTTP parser (WebAssembly) with V8's optimizing compiler shortly after it starts,
 * through about 25 MiB of short-lived allocations, and kept 7–10 MiB of them for good; with a fixed
 * threshold of 32 KiB, V8's large compiler allocations are mapped apart and unmapped once freed (see
 * bench/README.md, "Memory"). The environment given to a service comes after these, so it wins.
 */
export const SERVICE_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '32768',
};

export interface SpawnOptions {
  /** Every chunk of stdout and stderr, e.g. to append to a log file. */
  onOutput?: (chunk: string) => void;
  /** Another entry point than src/main.ts, e.g. src/migrate.ts. */
  entry?: string;
  /**
   * `source` (the default): the TypeScript sources, as `npm start` runs them. `dist`: the compiled
   * JavaScript (`pnpm build` first), as the containers run it; `entry` then names a file under dist/.
   */
  build?: 'source' | 'dist';
  /** Node options before the environment's NODE_OPTIONS: SERVICE_NODE_OPTIONS unless given ('' for none). */
  nodeOptions?: string;
  /** The environment under `env`: SERVICE_ENV unless given ({} for none). */
  serviceEnv?: Readonly<Record<string, string>>;
}

export type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * One atoll service running as its own process, exactly as `main.ts` runs in production (signals,
 * close-with-grace, exit codes), from the TypeScript sources or the compiled JavaScript. Its JSON log lines are collected in `logs`
 * until `stopRetaining()` (a long-running stack keeps only the tail of stderr).
 */
export class ServiceProcess {
  readonly name: string;
  readonly logs: LogLine[] = [];
  stdout = '';
  /** The last 8 KiB of stderr: why a process died. */
  stderr = '';
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  url = '';
  private retain = true;
  private partial = '';

  private constructor(name: string, child: ChildProcess, opts: SpawnOptions) {
    this.name = name;
    this.child = child;
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    child.stdout?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      opts.onOutput?.(text);
      if (this.retain) this.collect(text);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      opts.onOutput?.(text);
      this.stderr = (this.stderr + text).slice(-8192);
    });
  }

  private collect(text: string) {
    this.stdout += text;
    const lines = (this.partial + text).split('\n');
    this.partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      try {
        this.logs.push(JSON.parse(line) as LogLine);
      } catch {
        this.logs.push({ msg: line });
      }
    }
  }

  /** Stops keeping log lines in memory (for processes that run for hours). */
  stopRetaining(): void {
    this.retain = false;
    this.logs.length = 0;
    this.stdout = '';
  }

  /** Spawns `apps/<app>/<entry>` with `env` on top of a minimal environment. */
  static spawn(app: string, env: Record<string, string>, opts: SpawnOptions = {}): ServiceProcess {
    const dist = opts.build === 'dist';
    const entry = opts.entry ?? (dist ? 'dist/main.js' : 'src/main.ts');
    const file = `${repoRoot}apps/${app}/${entry}`;
    const child = spawn(process.execPath, dist ? [file] : ['--conditions=atoll-source', file], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'production',
        ...(opts.serviceEnv ?? SERVICE_ENV),
        ...env,
        NODE_OPTIONS: [opts.nodeOptions ?? SERVICE_NODE_OPTIONS, env.NODE_OPTIONS ?? '']
          .filter(Boolean)
          .join(' '),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, like RedisServer: shutdown order is decided by whoever started it.
      detached: true,
    });
    ownProcess(child);
    return new ServiceProcess(app, child, opts);
  }

  /**
   * Spawns and waits until the service answers `GET /health/live`; `url` is then its base URL. A port
   * of 0 (or none) is replaced by a free one first, so readiness does not depend on the log level.
   */
  static async start(
    app: string,
    env: Record<string, string>,
    opts: SpawnOptions & { timeoutMs?: number } = {},
  ): Promise<ServiceProcess> {
    const port = env.PORT && env.PORT !== '0' ? env.PORT : String(await freePort());
    const host = !env.HOST || env.HOST === '0.0.0.0' ? '127.0.0.1' : env.HOST;
    const proc = ServiceProcess.spawn(app, { ...env, PORT: port }, opts);
    proc.url = `http://${host}:${port}`;
    const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
    for (;;) {
      const live = await fetch(`${proc.url}/health/live`).then(
        (r) => r.ok,
        () => false,
      );
      if (live) return proc;
      if (!proc.running) {
        const { code } = await proc.exited;
        throw new Error(
          `${app} exited with ${code} before listening: ${proc.stderr.trim() || proc.stdout.trim()}`,
        );
      }
      if (Date.now() > deadline) {
        await proc.stop('SIGKILL');
        throw new Error(`${app} did not answer on ${proc.url} in time: ${proc.stderr.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the service answers `GET /health/ready` with 200 (every dependency up). */
  async waitReady(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const ready = await fetch(`${this.url}/health/ready`).then(
        async (r) => {
          await r.body?.cancel();
          return r.ok;
        },
        () => false,
      );
      if (ready) return;
      if (!this.running) throw new Error(`${this.name} exited before it was ready: ${this.stderr.trim()}`);
      if (Date.now() > deadline) throw new Error(`${this.name} was not ready on ${this.url} in time`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  waitForLog(match: (line: LogLine) => boolean, timeoutMs = 20_000): Promise<LogLine> {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = () => {
        const found = this.logs.find(match);
        if (found) return resolve(found);
        if (this.child.exitCode !== null || Date.now() - started > timeoutMs) {
          return reject(new Error(`${this.name}: no matching log line (${this.stdout.slice(-2000)})`));
        }
        setTimeout(poll, 20);
      };
      poll();
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Sends a signal and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (this.running) this.child.kill(signal);
    return this.exited;
  }
}
