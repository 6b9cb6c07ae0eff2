/**
 * The outbox of user events: an account change and its `user.*` event are written in one transaction
 * (`recordEvent`); the relay (`@atoll/db` OutboxRelay) appends pending events to the user events Stream
 * on redis-queue. See packages/db/src/outbox.ts for the delivery guarantees.
 */
import { OutboxRelay, type RelayLog } from '@atoll/db';
import { type EventPayload, type EventType, publishUserEvent } from '@atoll/events';
import { type RedisClient, waitForReplicas } from '@atoll/redis';
import type { Keys } from '@atoll/redis-keys';
import type { Kysely } from 'kysely';
import type { AuthDatabase } from '../db.ts';
import type { Executor } from '../users/user.repository.ts';

export async function recordEvent<T extends EventType>(
  db: Executor,
  type: T,
  payload: EventPayload<T>,
): Promise<void> {
  await db
    .insertInto('outbox')
    .values({ type, payload: JSON.stringify(payload) })
    .execute();
}

export type UserEventRelay = OutboxRelay<{ type: string; payload: unknown }>;

export function userEventRelay(
  db: Kysely<AuthDatabase>,
  redis: RedisClient,
  keys: Keys,
  log: RelayLog,
): UserEventRelay {
  return new OutboxRelay({
    db,
    table: 'outbox',
    columns: ['type', 'payload'],
    deliver: async (row) => {
      await publishUserEvent(redis, keys, row.type as EventType, row.payload as EventPayload<EventType>);
    },
    // On a Sentinel group a batch counts as published once a replica has it; else it is sent again
    // (consumers are idempotent).
    confirm: () => waitForReplicas(redis),
    log,
  });
}
