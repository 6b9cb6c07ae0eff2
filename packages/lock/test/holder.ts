/**
 * A lock holder in its own process, for the lock tests. Takes `LOCK_NAME` (trying once) and prints one
 * JSON line per step on stdout:
 * - `{"acquired":false}` and exits, or `{"acquired":true,"fence":n}`;
 * - then, per line read on stdin: `write` tries a fenced write of `{"wrote":bool,"lost":bool}`
 *   (`lost`: the lease's signal has aborted), `release` answers `{"released":bool}` and exits.
 * With HOLD_MS set it instead holds the lease that long, records its work and releases by itself.
 */
import { createInterface } from 'node:readline';
import { createDb } from '@atoll/db';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { advanceFence, LockClient } from '../src/index.ts';

const env = process.env as Record<string, string>;
const silent = { info() {}, warn() {}, error() {} };
const redis = await connectRedis({
  url: env.REDIS_URL ?? '',
  role: 'queue',
  use: 'producer',
  name: 'holder',
  log: silent,
});
const db = createDb<unknown>({ url: env.DATABASE_URL ?? '', schema: 'public' });
const locks = new LockClient(redis, createKeys(env.KEY_PREFIX));
const say = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`);
const done = async () => {
  await closeRedis(redis);
  await db.destroy();
};

const lease = await locks.acquire(env.LOCK_NAME ?? 'test', {
  ttlMs: Number(env.TTL_MS),
  autoExtend: env.AUTO_EXTEND !== 'false',
});
say(lease ? { acquired: true, fence: lease.fence } : { acquired: false });
if (!lease) {
  await done();
} else if (env.HOLD_MS) {
  await advanceFence(db, 'work', lease.fence);
  await new Promise((r) => setTimeout(r, Number(env.HOLD_MS)));
  say({ released: await lease.release() });
  await done();
} else {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'write')
      say({ wrote: await advanceFence(db, 'work', lease.fence), lost: lease.signal.aborted });
    if (line === 'release') {
      say({ released: await lease.release() });
      break;
    }
  }
  process.stdin.destroy(); // the parent's pipe would keep this process alive
  await done();
}
