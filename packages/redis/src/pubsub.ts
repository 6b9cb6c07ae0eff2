/**
 * Pub/sub the same way on every topology. On one server or a Sentinel group: PUBLISH and SUBSCRIBE. On a
 * Redis Cluster: sharded pub/sub (SPUBLISH, SSUBSCRIBE; Redis 7), where a channel lives on the shard that
 * serves its slot, as a key would. Why sharded rather than plain PUBLISH, which a cluster broadcasts to
 * every node:
 *
 * - a subscriber must know when it may have missed a message (the cache then stops trusting its
 *   in-process layer): ioredis's sharded subscriber connection reports its end (`-node`) and its return
 *   (`subscribersReady`, once it has sent the subscription again, not once it is answered, and also
 *   after a subscriber failed to connect: @atoll/cache confirms the bus with a probe), while its plain
 *   cluster subscriber changes nodes silently;
 * - a message reaches only the shard's primary and replicas, not every node of the cluster.
 * The cost: while the channel's shard fails over (a few seconds) nothing is published or received; the
 * subscriber reports it down meanwhile.
 */
import type { Cluster } from 'ioredis';
import { isCluster, type RedisClient } from './client.ts';

/** Publishes `message` on `channel`: SPUBLISH on a cluster, PUBLISH otherwise. */
export async function publish(client: RedisClient, channel: string, message: string): Promise<void> {
  if (isCluster(client)) await client.spublish(channel, message);
  else await client.publish(channel, message);
}

export interface ChannelWatch {
  /** A message arrived on the channel. */
  message(text: string): void;
  /** The subscription may miss messages from now on (its connection is gone). */
  down(): void;
  /** Subscribed again after `down` (messages published meanwhile were missed). */
  up(): void;
}

/**
 * Subscribes `subscriber` (a client of use `subscriber`: on a cluster it has sharded subscribers) to
 * `channel` and reports messages and the subscription's health to `watch`. Resolves once subscribed.
 */
export async function watchChannel(
  subscriber: RedisClient,
  channel: string,
  watch: ChannelWatch,
): Promise<void> {
  if (isCluster(subscriber)) {
    watchShardedChannel(subscriber, channel, watch);
    await subscriber.ssubscribe(channel);
    return;
  }
  subscriber.on('message', (from: string, text: string) => {
    if (from === channel) watch.message(text);
  });
  subscriber.on('close', () => watch.down());
  subscriber.on('reconnecting', () => watch.down());
  // ioredis subscribes again before it says ready.
  subscriber.on('ready', () => watch.up());
  await subscriber.subscribe(channel);
}

/**
 * Asks `subscriber` to subscribe to `channel` again (SSUBSCRIBE on a cluster, SUBSCRIBE otherwise):
 * for a subscription its client says is back but that does not deliver (see `watchChannel`'s users).
 */
export async function subscribeAgain(subscriber: RedisClient, channel: string): Promise<void> {
  if (isCluster(subscriber)) await subscriber.ssubscribe(channel);
  else await subscriber.subscribe(channel);
}

function watchShardedChannel(subscriber: Cluster, channel: string, watch: ChannelWatch): void {
  subscriber.on('smessage', (from: string, text: string) => {
    if (from === channel) watch.message(text);
  });
  // A sharded subscriber connection ended (its node failed, or the slot moved): down until ioredis has
  // refreshed the slot map and subscribed again on the shard's current primary. ioredis names the node
  // only for a subscriber's end; a `-node` without it is another connection of the pool leaving.
  subscriber.on('-node', (_node: unknown, nodeKey?: string) => {
    if (nodeKey !== undefined) watch.down();
  });
  subscriber.on('subscribersReady', () => watch.up());
}
