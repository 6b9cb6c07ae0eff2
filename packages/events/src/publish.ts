import type { RedisClient } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import type { EventPayload, EventType } from './catalog.ts';
import { encodeEvent } from './codec.ts';

/** How many entries the user events stream keeps (approximately; trimming is cheap with `~`). */
export const USER_EVENTS_MAXLEN = 100_000;

/** Appends one validated user event to the stream; resolves to the entry id. */
export async function publishUserEvent<T extends EventType>(
  redis: RedisClient,
  keys: Keys,
  type: T,
  payload: EventPayload<T>,
): Promise<string> {
  const id = await redis.xadd(
    keys.userEvents(),
    'MAXLEN',
    '~',
    String(USER_EVENTS_MAXLEN),
    '*',
    ...encodeEvent(type, payload),
  );
  if (!id) throw new Error('XADD returned no id');
  return id;
}
