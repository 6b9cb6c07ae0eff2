/**
 * The live stream's rules, without I/O: who may open a stream, what a stream does at a tick, how long it
 * lives, which ids it has sent, and the bytes of each frame. The hub (hub.ts) and a stream (stream.ts)
 * only apply them.
 */
import type { LiveNotification } from '@atoll/events';

export interface StreamCaps {
  maxStreamsPerUser: number;
  maxStreamsPerAddress: number;
  maxStreams: number;
}

/** What the instance holds when a new stream asks to open. */
export interface Holding {
  /** Open streams on this instance. */
  total: number;
  /** Open streams of the new stream's client address. */
  fromAddress: number;
  /** Open streams of the new stream's user. */
  ofUser: number;
  /** Whether the user's oldest stream (the one a new one beyond the user cap ends) is from the same address. */
  oldestFromSameAddress: boolean;
}

export type Admission =
  | { ok: true; endsOldest: boolean }
  | { ok: false; code: 'STREAMS_UNAVAILABLE' | 'STREAMS_TOO_MANY'; status: 503 | 429; retryAfterS: number };

/**
 * Retry-After on a refused stream, in seconds: an address's own streams end (or it closes some) before a
 * slot is free; a full instance frees slots as streams end or move to other instances.
 */
export const RETRY_AFTER_ADDRESS_S = 60;
export const RETRY_AFTER_FULL_S = 5;

/**
 * May a new stream open? A user at their cap has their oldest ended to make room, and that slot is the
 * new one's (in all, and for the address when it is the same): so a user's new stream from the same
 * address takes its place rather than being refused.
 */
export function admit(caps: StreamCaps, holding: Holding): Admission {
  const endsOldest = holding.ofUser >= caps.maxStreamsPerUser;
  if (holding.total - (endsOldest ? 1 : 0) >= caps.maxStreams) {
    return { ok: false, code: 'STREAMS_UNAVAILABLE', status: 503, retryAfterS: RETRY_AFTER_FULL_S };
  }
  const fromAddress = holding.fromAddress - (endsOldest && holding.oldestFromSameAddress ? 1 : 0);
  if (fromAddress >= caps.maxStreamsPerAddress) {
    return { ok: false, code: 'STREAMS_TOO_MANY', status: 429, retryAfterS: RETRY_AFTER_ADDRESS_S };
  }
  return { ok: true, endsOldest };
}

/** `Last-Event-ID` as a notification id, or null (absent, repeated, or not a plain number). */
export function lastEventId(header: string | string[] | undefined): number | null {
  return typeof header === 'string' && /^\d{1,15}$/.test(header) ? Number(header) : null;
}

/** A stream's lifetime: `maxLifetimeMs` less up to a tenth, so streams opened together end apart. */
export function lifetimeMs(maxLifetimeMs: number, random: number): number {
  return maxLifetimeMs * (0.9 + random * 0.1);
}

/**
 * A stream asked to reconnect tells its client to come back after this many ms, at random: within 0.5–2.5
 * s at the end of its life (streams end apart already), 0.5–10.5 s after the subscription was down
 * (every stream of the instance at once, each coming back with a catch-up from the notifier).
 */
const RECONNECT_MIN_MS = 500;
const RECONNECT_SPREAD_MS: Record<ReconnectReason, number> = {
  'max-lifetime': 2000,
  'missed-events': 10_000,
};
export function reconnectMs(reason: ReconnectReason, random: number): number {
  return RECONNECT_MIN_MS + Math.floor(random * RECONNECT_SPREAD_MS[reason]);
}

/**
 * How often the hub's one timer looks at every stream: often enough for a stream's heartbeat and end of
 * life to come within a second of when they are due, never more often than the heartbeat.
 */
export function tickMs(heartbeatMs: number): number {
  return Math.min(heartbeatMs, 1000);
}

export type TickAction = 'retire' | 'heartbeat' | null;

/** What a stream does at a tick of the hub's timer: end its life, beat, or nothing yet. */
export function atTick(stream: { endsAt: number; nextBeatAt: number }, now: number): TickAction {
  if (now >= stream.endsAt) return 'retire';
  if (now >= stream.nextBeatAt) return 'heartbeat';
  return null;
}

/**
 * The ids a stream sent last, to drop a repeat (a retried job publishes its event again; a live event
 * held during the catch-up may be in the catch-up too). A ring of the last `RECENT_IDS`: repeats come
 * soon after the first, and a ring costs a stream a fixed ~0.5 KiB, where a Set of 1,000 ids grew to
 * tens of KiB on a busy stream. Allocated at the first id: a stream that gets nothing costs nothing.
 */
export const RECENT_IDS = 64;
export class RecentIds {
  private ring: Float64Array | null = null;
  private next = 0;

  has(id: number): boolean {
    return this.ring?.includes(id) ?? false;
  }

  add(id: number): void {
    this.ring ??= new Float64Array(RECENT_IDS);
    this.ring[this.next] = id;
    this.next = (this.next + 1) % RECENT_IDS;
  }
}

/** Drops repeats by id, keeping the order: what a catch-up sends (a page may overlap live events held). */
export function withoutRepeats(notifications: LiveNotification[]): LiveNotification[] {
  const seen = new Set<number>();
  return notifications.filter((n) => !seen.has(n.id) && seen.add(n.id));
}

/** The frames of the stream, as written on the wire. */
export const frames = {
  open: 'retry: 2000\n\n',
  heartbeat: ': heartbeat\n\n',
  shutdown: 'event: shutdown\ndata: {}\n\n',
  notification: (n: LiveNotification) => `id: ${n.id}\nevent: notification\ndata: ${JSON.stringify(n)}\n\n`,
  end: (reason: EndReason) => `event: end\ndata: ${JSON.stringify({ reason })}\n\n`,
  reconnect: (retryMs: number, reason: ReconnectReason) =>
    `retry: ${retryMs}\nevent: reconnect\ndata: {"reason":"${reason}"}\n\n`,
};

/**
 * Why a stream asks its client to come back: its life is over, or the hub's subscription was down a
 * while, so notifications published meanwhile reach the client only through its catch-up.
 */
export type ReconnectReason = 'max-lifetime' | 'missed-events';

export type EndReason = 'session-ended' | 'session-unverified' | 'too-many-streams';
