/**
 * The catalog of events between services, with versioned schemas. An event on the wire is a Stream entry
 * with three fields: `type` (e.g. `user.registered`), `v` (the schema version) and `data` (JSON).
 *
 * Compatibility rule: a consumer accepts the current version of each event and the one before it, so a
 * producer can be deployed before or after its consumers. A new version is added here next to the old
 * one; the old one is removed only when no producer emits it any more.
 */
import Type, { type Static, type TSchema } from 'typebox';

const Uuid = Type.String({
  format: 'uuid',
  pattern: '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$',
});
const Timestamp = Type.String({ description: 'ISO 8601', pattern: '^\\d{4}-\\d{2}-\\d{2}T' });

/** The public part of an account: what other services may keep a copy of. */
const PublicProfileV1 = {
  userId: Uuid,
  username: Type.String({ minLength: 1 }),
  bio: Type.Union([Type.String(), Type.Null()]),
  image: Type.Union([Type.String(), Type.Null()]),
  occurredAt: Timestamp,
};

const UserRegisteredV1 = Type.Object(
  { ...PublicProfileV1, email: Type.String() },
  { additionalProperties: false },
);
const UserUpdatedV1 = Type.Object(PublicProfileV1, { additionalProperties: false });

/** The payload producers emit today, per event type (the current version of each). */
export interface EventPayloads {
  'user.registered': Static<typeof UserRegisteredV1>;
  'user.updated': Static<typeof UserUpdatedV1>;
}

export type EventType = keyof EventPayloads;
export type EventPayload<T extends EventType> = EventPayloads[T];

/** Every version of every event that may be on the wire. */
export const EVENT_SCHEMAS: { [T in EventType]: Record<number, TSchema> } = {
  'user.registered': { 1: UserRegisteredV1 },
  'user.updated': { 1: UserUpdatedV1 },
};

/** The version producers emit today. */
export const CURRENT_VERSION: { [T in EventType]: number } = {
  'user.registered': 1,
  'user.updated': 1,
};
