/**
 * The live notification message: what the notifier publishes on the live pub/sub channel of
 * redis-session (`keys.liveNotifications()`), what every gateway decodes to write a Server-Sent Event,
 * and the notification shape the notifier's `GET /api/notifications?after=<id>` answers with when a
 * reconnecting stream catches up. Defined here once; the publisher, the subscriber and the catch-up all
 * go through these functions.
 *
 * On the wire: `{"v":1,"userId":"…","notification":{…}}`. A message without `v` is the unversioned form
 * publishers sent before (the same shape), read as v1. As with the events of catalog.ts, a subscriber
 * accepts the current version and the one before it, so the notifier and the gateway deploy in any order.
 * A message that is not JSON, of another version, or does not match its schema comes back with the
 * reason: the gateway drops and counts it, a stream never sees it.
 */
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';

/** A notification as the API and the live stream show it (the SSE event's `data`, its `id` the event id). */
export const LiveNotificationSchema = Type.Object({
  id: Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER }),
  type: Type.String({ minLength: 1 }),
  actor: Type.Object({ username: Type.String() }),
  article: Type.Union([Type.Object({ slug: Type.String(), title: Type.String() }), Type.Null()]),
  commentId: Type.Union([Type.Integer(), Type.Null()]),
  excerpt: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.String(),
  read: Type.Boolean(),
});
export type LiveNotification = Static<typeof LiveNotificationSchema>;

const LiveMessageV1 = Type.Object({
  v: Type.Optional(Type.Literal(1)),
  userId: Type.String({ minLength: 1 }),
  notification: LiveNotificationSchema,
});
export type LiveMessage = Static<typeof LiveMessageV1>;

/** The version publishers send today. */
export const LIVE_MESSAGE_VERSION = 1;

/** What a catch-up page of the notifier carries that the gateway reads (the rest it ignores). */
const CatchUpPage = Type.Object({ notifications: Type.Array(LiveNotificationSchema) });

// Compiled once: the gateway checks every message it receives, whatever the number of streams.
const messageV1 = Compile(LiveMessageV1);
const catchUpPage = Compile(CatchUpPage);

export type DecodedLiveMessage = { ok: true; message: LiveMessage } | { ok: false; reason: string };

function firstError(errors: Iterable<{ instancePath: string; message: string }>): string {
  for (const e of errors) return `${e.instancePath || '/'} ${e.message}`;
  return 'does not match its schema';
}

/** The channel message for a recipient's new notification; throws on a notification of the wrong shape. */
export function encodeLiveMessage(userId: string, notification: LiveNotification): string {
  const message = { v: LIVE_MESSAGE_VERSION, userId, notification } as const;
  if (!messageV1.Check(message)) {
    throw new TypeError(`invalid live message v1: ${firstError(messageV1.Errors(message))}`);
  }
  return JSON.stringify(message);
}

/** Reads a channel message; anything but a valid v1 (or unversioned) message comes back with the reason. */
export function decodeLiveMessage(raw: string): DecodedLiveMessage {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const v = (value as { v?: unknown } | null)?.v;
  if (v !== undefined && v !== LIVE_MESSAGE_VERSION) {
    return { ok: false, reason: `live message v${String(v)} is not accepted (current is v1)` };
  }
  if (!messageV1.Check(value)) {
    return { ok: false, reason: `live message v1: ${firstError(messageV1.Errors(value))}` };
  }
  return { ok: true, message: value };
}

/**
 * The notifications of a catch-up page (the JSON body of `GET /api/notifications?after=`), oldest
 * first; throws if the body is not of that shape (the catch-up then fails and the client retries).
 */
export function decodeCatchUpPage(body: unknown): LiveNotification[] {
  if (!catchUpPage.Check(body)) {
    throw new TypeError(`invalid catch-up page: ${firstError(catchUpPage.Errors(body))}`);
  }
  return body.notifications;
}
