/**
 * One client's live stream: what it writes and in which order, its session re-check, its end. It holds no
 * timer and no closure of its own: the hub's one timer calls `tick` (heartbeat, end of life), the hub
 * calls `deliver` for each notification of its user. Every write goes through `whileSessionLives`, one
 * after the other, so a stream never writes after its session is gone.
 */
import type { ServerResponse } from 'node:http';
import type { LiveNotification } from '@atoll/events';
import {
  atTick,
  type EndReason,
  frames,
  RecentIds,
  type ReconnectReason,
  reconnectMs,
  withoutRepeats,
} from './rules.ts';

/** What every stream of a hub shares. */
export interface StreamContext {
  /** Whether the session record exists (one EXISTS on redis-session); rejects when it cannot answer. */
  sessionExists(sessionKey: string): Promise<boolean>;
  /** A session check failed (logged by the hub). */
  sessionCheckFailed(err: Error): void;
}

export class LiveStream {
  open = true;
  /** When the next heartbeat is due, and when the stream's life ends (ms since the epoch). */
  nextBeatAt: number;
  readonly endsAt: number;
  /** Live notifications that arrived while catching up (Last-Event-ID); null once caught up. */
  private held: LiveNotification[] | null;
  private readonly recent = new RecentIds();
  /** Session checks and writes, in order: each waits for the one before. */
  private queue: Promise<void> = Promise.resolve();
  private readonly ctx: StreamContext;
  private readonly res: ServerResponse;
  readonly userId: string;
  /** The client address it counts against (the request's classification, rate-limit/address.ts). */
  readonly address: string;
  /** The session record this stream lives by. */
  private readonly sessionKey: string;

  constructor(
    ctx: StreamContext,
    res: ServerResponse,
    who: { userId: string; address: string; sessionKey: string },
    timing: { now: number; heartbeatMs: number; lifetimeMs: number; catchingUp: boolean },
  ) {
    this.ctx = ctx;
    this.res = res;
    this.userId = who.userId;
    this.address = who.address;
    this.sessionKey = who.sessionKey;
    this.nextBeatAt = timing.now + timing.heartbeatMs;
    this.endsAt = timing.now + timing.lifetimeMs;
    this.held = timing.catchingUp ? [] : null;
  }

  /** A notification for this stream's user, with its frame (written once by the hub for all its streams). */
  deliver(notification: LiveNotification, frame: string): void {
    if (this.held) this.held.push(notification);
    else this.whileSessionLives(() => this.send(notification.id, frame));
  }

  /** The catch-up's notifications, then those held meanwhile, each id once; live delivery resumes. */
  caughtUp(missed: LiveNotification[]): void {
    const all = withoutRepeats([...missed, ...(this.held ?? [])]);
    this.held = null;
    this.whileSessionLives(() => {
      for (const n of all) this.send(n.id, frames.notification(n));
    });
  }

  /** The hub's timer: a heartbeat (after a session check) when due, or the end of the stream's life. */
  tick(now: number, heartbeatMs: number): void {
    const action = atTick(this, now);
    if (action === 'heartbeat') {
      this.nextBeatAt = now + heartbeatMs;
      this.whileSessionLives(() => this.res.write(frames.heartbeat));
    } else if (action === 'retire') {
      this.retire('max-lifetime');
    }
  }

  /** Ends with `event: end` and the reason; nothing is written on it afterwards. */
  end(reason: EndReason): void {
    this.finish(frames.end(reason));
  }

  /** The gateway is closing: `event: shutdown`, so the client reconnects to another instance at once. */
  shutdown(): void {
    this.finish(frames.shutdown);
  }

  /** Ends without a word (the catch-up failed: the client retries with its Last-Event-ID). */
  abort(): void {
    this.finish('');
  }

  /** The connection closed. */
  closed(): void {
    this.open = false;
  }

  private finish(frame: string): void {
    if (!this.open) return;
    this.open = false;
    if (frame) this.res.write(frame);
    this.res.end();
  }

  /**
   * After its earlier writes: `retry:` and `event: reconnect`, so the client comes back with its
   * Last-Event-ID (its catch-up brings what it missed). False if it was asked already or has ended.
   */
  retire(reason: ReconnectReason): boolean {
    if (!this.open || this.nextBeatAt === Number.POSITIVE_INFINITY) return false;
    this.nextBeatAt = Number.POSITIVE_INFINITY;
    const retryMs = reconnectMs(reason, Math.random());
    this.queue = this.queue.then(() => this.finish(frames.reconnect(retryMs, reason)));
    return true;
  }

  private send(id: number, frame: string): void {
    if (this.recent.has(id)) return;
    this.recent.add(id);
    this.res.write(frame);
  }

  /**
   * Runs `write` after the stream's earlier writes, if its session still exists; else ends the stream
   * (`session-ended`, or `session-unverified` when redis-session cannot answer). One EXISTS per call.
   */
  private whileSessionLives(write: () => void): void {
    this.queue = this.queue.then(async () => {
      if (!this.open) return;
      let alive: boolean;
      try {
        alive = await this.ctx.sessionExists(this.sessionKey);
      } catch (err) {
        this.ctx.sessionCheckFailed(err as Error);
        this.end('session-unverified');
        return;
      }
      if (!this.open) return;
      if (alive) write();
      else this.end('session-ended');
    });
  }
}
