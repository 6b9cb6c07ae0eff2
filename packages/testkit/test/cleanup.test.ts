/**
 * The test kit always cleans up, also when the process that started things dies without a chance to
 * (a crashed or SIGKILLed test worker, a Ctrl-C'd run): the reaper kills what was started and removes the
 * temporary folders.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ownedTempDir, removeOwnedDir } from '../src/owned.ts';
import { RedisServer } from '../src/redis-server.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(check: () => boolean, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return check();
}

/** Runs `body` in a separate Node process that prints one JSON line, then SIGKILLs that process. */
async function startThenDie(body: string): Promise<{ pids: number[]; dirs: string[]; url?: string }> {
  const script = `
    import { RedisServer, ownedTempDir, startEmbeddedPostgres } from ${JSON.stringify(new URL('../src/servers.ts', import.meta.url).pathname)};
    ${body}
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--conditions=atoll-source', '--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] ?? '');
    });
    child.once('exit', (code) => reject(new Error(`child exited early with ${code}`)));
  });
  child.kill('SIGKILL');
  return JSON.parse(line) as { pids: number[]; dirs: string[]; url?: string };
}

describe('cleanup after a SIGKILLed test process', () => {
  it('kills its redis-server and removes its data folder', async () => {
    const { pids, dirs } = await startThenDie(`
      const redis = await RedisServer.start('queue');
      console.log(JSON.stringify({ pids: [redis.pid], dirs: [redis.dir] }));
    `);
    expect(pids[0]).toBeGreaterThan(0);
    expect(await until(() => !alive(pids[0] ?? 0))).toBe(true);
    expect(await until(() => !existsSync(dirs[0] ?? ''))).toBe(true);
  });

  it('kills its PostgreSQL server and removes its cluster', async () => {
    const { dirs, url } = await startThenDie(`
      const dir = await ownedTempDir('pg-reaper');
      const pg = await startEmbeddedPostgres({ dir });
      console.log(JSON.stringify({ pids: [], dirs: [dir], url: pg.adminUrl }));
    `);
    expect(existsSync(dirs[0] ?? '')).toBe(true);
    expect(await until(() => !existsSync(dirs[0] ?? ''), 15_000)).toBe(true);
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
    await expect(client.connect()).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('normal cleanup', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) removeOwnedDir(d);
  });

  it('dispose() stops the server and removes its folder; a kept folder survives a restart', async () => {
    const redis = await RedisServer.start('session');
    const pid = redis.pid ?? 0;
    await redis.dispose();
    expect(alive(pid)).toBe(false);
    expect(existsSync(redis.dir)).toBe(false);

    const dir = await ownedTempDir('kept');
    dirs.push(dir);
    const kept = await RedisServer.start('session', { dir });
    await kept.dispose();
    expect(existsSync(dir)).toBe(true);
  });
});
