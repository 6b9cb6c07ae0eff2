/**
 * The live hub of one gateway instance: one pub/sub subscription for all its streams, the streams it
 * holds by user and by client address, the caps, and one timer for every stream's heartbeat and end of
 * life (a timer per stream cost each stream two timers and their closures).
 *
 * While the subscription is down, notifications published on the channel are lost to this instance:
 * each time it is reported back, every stream open here gets `event: reconnect` (`missed-events`), and
 * its client comes back with its Last-Event-ID and gets them from the catch-up.
 *
 * A message from the channel is decoded once (@atoll/events' live message), its SSE frame written once,
 * and handed to the recipient's streams here. One that does not decode is dropped and counted
 * (`gateway_live_messages_dropped_total`), never written to a stream.
 */
import type { ServerResponse } from 'node:http';
import { decodeLiveMessage } from '@atoll/events';
import { type ChannelWatch, type RedisClient, watchChannel } from '@atoll/redis';
import { Counter, Gauge, type Registry } from '@atoll/service-kit';
import type { FastifyBaseLogger } from 'fastify';
import { type Admission, admit, frames, lifetimeMs, type StreamCaps, tickMs } from './rules.ts';
import { SessionChecks } from './session-checks.ts';
import { LiveStream, type StreamContext } from './stream.ts';

/** Session checks in flight at once, per hub (session-checks.ts). */
const CHECKS_IN_FLIGHT = 256;

export interface HubOptions extends StreamCaps {
  heartbeatMs: number;
  maxLifetimeMs: number;
  /** Whether a session record exists (one EXISTS on redis-session). */
  sessionExists(sessionKey: string): Promise<boolean>;
  log: FastifyBaseLogger;
  registry: Registry;
}

export class LiveHub {
  /** Each user's streams, oldest first (a Set keeps insertion order). */
  private readonly byUser = new Map<string, Set<LiveStream>>();
  /** Open streams per client address. */
  private readonly byAddress = new Map<string, number>();
  private total = 0;
  private readonly timer: NodeJS.Timeout;
  private readonly context: StreamContext;
  private readonly dropped: Counter;
  private readonly askedToCatchUp: Counter;
  private readonly opts: HubOptions;

  constructor(opts: HubOptions) {
    this.opts = opts;
    const checks = new SessionChecks(opts.sessionExists, CHECKS_IN_FLIGHT);
    this.context = {
      sessionExists: (key) => checks.check(key),
      sessionCheckFailed: (err) =>
        opts.log.warn({ err: { message: err.message } }, 'live stream: session check failed'),
    };
    this.dropped = new Counter({
      name: 'gateway_live_messages_dropped_total',
      help: 'Live notification messages from the pub/sub channel dropped because they did not decode',
      registers: [opts.registry],
    });
    this.askedToCatchUp = new Counter({
      name: 'gateway_live_streams_reconnected_total',
      help: 'Live streams asked to reconnect and catch up because the subscription was reported back (it may have missed messages)',
      registers: [opts.registry],
    });
    const open = () => this.total;
    new Gauge({
      name: 'gateway_live_streams',
      help: 'Live notification streams open on this instance',
      registers: [opts.registry],
      collect(this: Gauge) {
        this.set(open());
      },
    });
    this.timer = setInterval(() => this.tick(Date.now()), tickMs(opts.heartbeatMs));
    this.timer.unref();
  }

  /**
   * Subscribes to the live channel (SUBSCRIBE, or SSUBSCRIBE on a Redis Cluster: @atoll/redis pubsub.ts).
   * A notification published while the subscription is down is missed here, on any topology: when it is
   * reported back, every stream open here is asked to reconnect (`watch`).
   */
  listen(subscriber: RedisClient, channel: string): Promise<void> {
    return watchChannel(subscriber, channel, this.watch);
  }

  /**
   * What the subscription reports. Each time it is reported back (`up`), every stream open here may have
   * missed notifications (those opened while it was down too, after their catch-up), so each gets
   * `retry: <0.5–10.5 s>` and `event: reconnect` (`missed-events`) and ends; its client comes back,
   * spread over those ten seconds, with its Last-Event-ID, and the catch-up brings what it missed.
   *
   * Every `up`, not only one after a `down`: on a Redis Cluster ioredis reports its sharded subscribers
   * ready again after replacing one that could not connect, with no `down` before (@atoll/redis
   * pubsub.ts), and it reports them ready once it has sent the SSUBSCRIBE, before the answer: a client
   * that comes back at least half a second later finds the subscription in place, and its catch-up
   * covers the time between. On one server `up` comes only after a reconnect.
   */
  readonly watch: ChannelWatch = {
    message: (raw) => this.receive(raw),
    down() {},
    up: () => {
      for (const streams of this.byUser.values())
        for (const stream of streams) if (stream.retire('missed-events')) this.askedToCatchUp.inc();
    },
  };

  /** One message from the channel: to every stream of its recipient held here. */
  receive(raw: string): void {
    const decoded = decodeLiveMessage(raw);
    if (!decoded.ok) {
      this.dropped.inc();
      this.opts.log.warn({ reason: decoded.reason }, 'live message dropped');
      return;
    }
    const { userId, notification } = decoded.message;
    const streams = this.byUser.get(userId);
    if (!streams) return;
    const frame = frames.notification(notification);
    for (const stream of streams) stream.deliver(notification, frame);
  }

  /** May a stream of `userId` from `address` open now (StreamCaps)? */
  admit(userId: string, address: string): Admission {
    const mine = this.byUser.get(userId);
    const oldest = mine?.values().next().value;
    return admit(this.opts, {
      total: this.total,
      fromAddress: this.byAddress.get(address) ?? 0,
      ofUser: mine?.size ?? 0,
      oldestFromSameAddress: oldest?.address === address,
    });
  }

  /**
   * Holds a new stream on `res` (admitted just before): ends the user's oldest streams beyond their cap,
   * and lets it go when the connection closes.
   */
  open(
    res: ServerResponse,
    who: { userId: string; address: string; sessionKey: string },
    catchingUp: boolean,
  ): LiveStream {
    const stream = new LiveStream(this.context, res, who, {
      now: Date.now(),
      heartbeatMs: this.opts.heartbeatMs,
      lifetimeMs: lifetimeMs(this.opts.maxLifetimeMs, Math.random()),
      catchingUp,
    });
    let mine = this.byUser.get(who.userId);
    if (!mine) {
      mine = new Set();
      this.byUser.set(who.userId, mine);
    }
    for (const old of mine) {
      if (mine.size < this.opts.maxStreamsPerUser) break;
      this.remove(old);
      old.end('too-many-streams');
    }
    mine.add(stream);
    this.total += 1;
    this.byAddress.set(who.address, (this.byAddress.get(who.address) ?? 0) + 1);
    res.on('close', () => {
      stream.closed();
      this.remove(stream);
    });
    return stream;
  }

  /** Every stream gets `event: shutdown` (the gateway is closing): clients reconnect elsewhere at once. */
  shutdown(): void {
    for (const streams of this.byUser.values()) for (const stream of streams) stream.shutdown();
  }

  close(): void {
    clearInterval(this.timer);
  }

  private tick(now: number): void {
    const { heartbeatMs } = this.opts;
    for (const streams of this.byUser.values()) for (const stream of streams) stream.tick(now, heartbeatMs);
  }

  /** Lets a stream's slots go (its user's, its address's, the instance's); once per stream. */
  private remove(stream: LiveStream): void {
    const mine = this.byUser.get(stream.userId);
    if (!mine?.delete(stream)) return;
    if (mine.size === 0) this.byUser.delete(stream.userId);
    this.total -= 1;
    const left = (this.byAddress.get(stream.address) ?? 1) - 1;
    if (left > 0) this.byAddress.set(stream.address, left);
    else this.byAddress.delete(stream.address);
  }
}
