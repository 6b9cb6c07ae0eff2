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

/**
 * v2 of both events also carries what the notifier needs to mail the account and to judge its mail:
 * the current address and whether it is verified (an account's age is its `user.registered` time).
 * `user.updated` v2 is recorded whenever any of these change: the public profile, the email (a new
 * address is unverified), or the verification (a confirmed code, a Google sign-in that proved the
 * address). Never a secret.
 */
const AccountState = {
  email: Type.String({ minLength: 3, maxLength: 254 }),
  emailVerified: Type.Boolean(),
};
const UserRegisteredV2 = Type.Object(
  { ...PublicProfileV1, ...AccountState },
  { additionalProperties: false },
);
const UserUpdatedV2 = Type.Object({ ...PublicProfileV1, ...AccountState }, { additionalProperties: false });

/** The payload producers emit today, per event type (the current version of each). */
export interface EventPayloads {
  'user.registered': Static<typeof UserRegisteredV2>;
  'user.updated': Static<typeof UserUpdatedV2>;
}

/** Every version a consumer may receive, per event type (the current and the previous). */
export interface EventVersions {
  'user.registered': { 1: Static<typeof UserRegisteredV1>; 2: Static<typeof UserRegisteredV2> };
  'user.updated': { 1: Static<typeof UserUpdatedV1>; 2: Static<typeof UserUpdatedV2> };
}

export type EventType = keyof EventPayloads;
export type EventPayload<T extends EventType> = EventPayloads[T];

/** Every version of every event that may be on the wire. */
export const EVENT_SCHEMAS: { [T in EventType]: Record<number, TSchema> } = {
  'user.registered': { 1: UserRegisteredV1, 2: UserRegisteredV2 },
  'user.updated': { 1: UserUpdatedV1, 2: UserUpdatedV2 },
};

/** The version producers emit today. */
export const CURRENT_VERSION: { [T in EventType]: number } = {
  'user.registered': 2,
  'user.updated': 2,
};
