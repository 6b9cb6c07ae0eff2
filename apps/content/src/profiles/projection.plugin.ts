/**
 * Keeps `content.profiles` up to date from the user events Stream on redis-queue: a StreamConsumer in
 * the `content-profiles` group (one group for every content instance, so each event is applied by one
 * of them) hands each event to `applyUserEvent`.
 *
 * It has its own worker-mode connection to redis-queue: a consumer's blocking reads must not share the
 * fail-fast producer client that request paths use, and a worker connection waits through an outage
 * instead of failing. Reading starts once the app is ready and stops first when it closes (before the
 * database pool is destroyed, as onClose hooks run in reverse order), letting an event in flight finish.
 */
import { hostname } from 'node:os';
import { isDatabaseUnavailable } from '@atoll/db';
import { StreamConsumer } from '@atoll/events';
import { closeRedis, connectRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { dbOf } from '@atoll/service-kit';
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { applyUserEvent } from './profile.projection.ts';
import type { ProfilesDatabase } from './profile.table.ts';

export interface ProfileProjectionOptions {
  keyPrefix: string;
  redisQueueUrl: string;
  /** Names this instance in the consumer group; defaults to `<hostname>-<pid>`. */
  instanceId?: string;
  /**
   * Called after each applied event, e.g. to invalidate what shows the profile; `changed` says whether
   * what readers see of it (username, bio, image) changed.
   */
  onProfileEvent?: (userId: string, username: string, changed: boolean) => Promise<void>;
}

/**
 * While PostgreSQL is unreachable, waits and tries the same event again instead of failing it: a failed
 * delivery counts toward the consumer's dead-letter limit, and an outage is not the event's fault.
 * Every other error fails the delivery as usual.
 */
export async function applyWhileAvailable(
  apply: () => Promise<void>,
  stopping: () => boolean,
): Promise<void> {
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    try {
      return await apply();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || stopping()) throw err;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

const projectionPlugin: FastifyPluginAsync<ProfileProjectionOptions> = async (app, opts) => {
  const db = dbOf<ProfilesDatabase>(app);
  let stopping = false;
  // Connects and checks the server is configured for the queue role (refuses to boot otherwise).
  const redis = await connectRedis({
    url: opts.redisQueueUrl,
    role: 'queue',
    use: 'worker',
    name: 'content:events',
    log: app.log,
  });
  const consumer = new StreamConsumer({
    redis,
    stream: createKeys(opts.keyPrefix).userEvents(),
    group: 'content-profiles',
    consumer: `content-${opts.instanceId ?? `${hostname()}-${process.pid}`}`,
    handle: async (event) => {
      let changed = false;
      await applyWhileAvailable(
        async () => {
          ({ changed } = await applyUserEvent(db, event));
        },
        () => stopping,
      );
      const { userId, username } = event.payload as { userId?: string; username?: string };
      if (userId && username) await opts.onProfileEvent?.(userId, username, changed);
    },
    log: app.log.child({ component: 'profile-projection' }),
  });
  app.addHook('onReady', async () => {
    consumer.start();
  });
  app.addHook('onClose', async () => {
    stopping = true;
    await consumer.stop();
    await closeRedis(redis);
  });
};

export const profileProjection = fp(projectionPlugin, {
  name: 'content-profile-projection',
  fastify: '5.x',
  dependencies: ['@atoll/db', '@atoll/redis-roles'],
});
