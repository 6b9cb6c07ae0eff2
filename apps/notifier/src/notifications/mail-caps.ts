/**
 * The caps on instant notification mail (N7: a flood of mentions or comments mails someone's inbox
 * full of the attacker's words, through atoll's own sender; who may be mailed at all, and whose actions
 * may cause mail, is mail-rules.ts):
 *
 * - `MailCaps.take`: at most NOTIFY_MAIL_CAP_PER_RECIPIENT instant emails per recipient and
 *   NOTIFY_MAIL_CAP_PER_ACTOR caused by one actor per NOTIFY_MAIL_CAP_WINDOW_MS; beyond either, the email
 *   is not sent and the notification waits, unread, for the recipient's next digest.
 *
 * The counters (`keys.notifyMailCap`, redis-queue) are incremented and given their TTL in one script,
 * both sent in the same tick (not one pipeline: they have different hash tags). A retried job counts again: the
 * caps err on the side of fewer emails.
 */
import { defineScript, type RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import type { MailCaps as Settings } from '../config.ts';

/**
 * count-window.lua — counts one email in a fixed window; returns the count.
 *
 * KEYS[1]  the counter (a String)
 * ARGV[1]  the window in milliseconds
 *
 * INCR and its PEXPIRE in one atomic step: no counter is ever left without a TTL.
 */
const COUNT_WINDOW_LUA = `
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return count
`;

const COUNT_WINDOW = defineScript<[windowMs: number], number>({
  name: 'notifyCount',
  lua: COUNT_WINDOW_LUA,
  keys: ['notifyMailCap'],
});

export type CapVerdict = 'send' | 'over-recipient-cap' | 'over-actor-cap';

export class MailCaps {
  private readonly redis: RedisClient;
  private readonly keys: Keys;
  private readonly settings: Settings;

  constructor(redis: RedisClient, keys: Keys, settings: Settings) {
    this.redis = redis;
    this.keys = keys;
    this.settings = settings;
  }

  /** Counts one instant email to `recipientId` caused by `actorId`; whether it may go. */
  async take(recipientId: string, actorId: string): Promise<CapVerdict> {
    const { windowMs, perRecipient, perActor } = this.settings;
    // Both counts sent in the same tick, not as one pipeline: the two counters have slots of their own,
    // which one ioredis pipeline may not span on a Redis Cluster.
    const [toRecipient, byActor] = await Promise.all([
      COUNT_WINDOW.run(this.redis, [this.keys.notifyMailCap('recipient', recipientId)], windowMs),
      COUNT_WINDOW.run(this.redis, [this.keys.notifyMailCap('actor', actorId)], windowMs),
    ]);
    if ((toRecipient ?? 0) > perRecipient) return 'over-recipient-cap';
    if ((byActor ?? 0) > perActor) return 'over-actor-cap';
    return 'send';
  }
}
