/**
 * Live notifications: the notifier publishes each new notification on one pub/sub channel of
 * redis-session, where every gateway instance subscribes and writes it to the streams of the recipient
 * it has open. Pub/sub keeps nothing, so a gateway that is not listening at that moment misses it; the
 * event's id is the notification's row id, and a client reconnecting with `Last-Event-ID` gets what it
 * missed from PostgreSQL (`GET /api/notifications?after=<id>`).
 *
 * Why redis-session: it is the instance every gateway already talks to (design.md's topology draws the
 * live pub/sub into the gateway beside redis-session), so the live path adds no dependency to the edge,
 * and nothing of it needs the queue instance's persistence.
 */

import { encodeLiveMessage, type LiveMessage } from '@atoll/events';
import { publish, type RedisClient } from '@atoll/redis';

export class LivePublisher {
  private readonly redis: RedisClient;
  private readonly channel: string;

  constructor(redis: RedisClient, channel: string) {
    this.redis = redis;
    this.channel = channel;
  }

  /** Publishes; a failure is the caller's to retry (the job fails and runs again). */
  async publish({ userId, notification }: LiveMessage): Promise<void> {
    await publish(this.redis, this.channel, encodeLiveMessage(userId, notification));
  }
}
