/**
 * `GET /api/notifications/stream`: the signed-in user's notifications, live, as Server-Sent Events.
 *
 * - Fan-out: the notifier publishes every new notification on one redis-session pub/sub channel; each
 *   gateway instance subscribes once and writes each message to the streams it holds for the recipient.
 * - Every event has an id (the notification's id in PostgreSQL): `id: 42`, `event: notification`,
 *   `data: {...}`. A client that reconnects with `Last-Event-ID` (browsers' EventSource do it by
 *   themselves) first gets what came after that id from the durable store — the notifier's
 *   `GET /api/notifications?after=<id>` — then the live events, so pub/sub dropping messages while it
 *   was away costs nothing. Live events that arrive during that catch-up are held and sent after it;
 *   an id already sent on this stream is never sent twice. (Across reconnects an id can come again:
 *   clients drop repeats by id.)
 * - A comment line every `heartbeatMs` keeps proxies and load balancers from closing an idle stream.
 * - On shutdown every stream ends with `event: shutdown` first, so clients reconnect (to another
 *   instance) at once, with their Last-Event-ID, and the server can close.
 * - A stream lives no longer than its session: before each event and at each heartbeat the session
 *   record is checked (one EXISTS on redis-session); once it is gone (log out, log out everywhere, a
 *   revoked or expired session) the stream gets `event: end` with `{"reason":"session-ended"}` and
 *   closes, and nothing more is delivered on it. If redis-session cannot answer, the stream ends the
 *   same way (`session-unverified`): the client reconnects with its Last-Event-ID and misses nothing.
 * - At most `maxStreamsPerUser` streams per user on this gateway instance: a new one beyond that ends
 *   the user's oldest with `event: end` and `{"reason":"too-many-streams"}`. A client should stop on
 *   `event: end` rather than reconnect (a browser's EventSource reconnects unless the page closes it).
 * - At most `maxStreamsPerAddress` streams per client address (an IPv6 address counts as its /64, as in
 *   the rate limits), whatever the accounts, and `maxStreams` in all on this instance: beyond them a new
 *   stream is refused before it starts, 429 `STREAMS_TOO_MANY` or 503 `STREAMS_UNAVAILABLE`, with
 *   Retry-After. (A new stream that would end the same user's oldest from the same address takes its
 *   place rather than being refused.)
 * - A stream lasts at most `maxLifetimeMs` (less up to a tenth, at random, so streams opened together do
 *   not all reconnect together): then it gets `retry: <ms>` and `event: reconnect` with
 *   `{"reason":"max-lifetime"}` and ends. An EventSource reconnects by itself after that many ms with its
 *   Last-Event-ID and gets what it missed in between from the catch-up above. So no stream holds a
 *   session check, a slot and its memory forever, and a long-lived client moves between instances.
 */
import { IDENTITY_HEADER, type IdentitySigner } from '@atoll/identity';
import type { RoleCheckedRedis } from '@atoll/redis';
import { closeRedis, connectRedis, watchChannel } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { type ErrorCode, errorBody, REQUEST_ID_HEADER } from '@atoll/service-kit';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { request as httpRequest } from 'undici';
import { type UpstreamPool, withInstances } from '../plugins/upstream-pool.ts';
import { assertionFor } from './assertion.ts';

export interface StreamOptions {
  keyPrefix: string;
  redisSessionUrl: string;
  /** The notifier's instances: the catch-up asks them in turn. */
  notifier: UpstreamPool;
  signer: IdentitySigner;
  heartbeatMs: number;
  maxStreamsPerUser: number;
  maxStreamsPerAddress: number;
  maxStreams: number;
  maxLifetimeMs: number;
}

interface LiveNotification {
  id: number;
  [field: string]: unknown;
}

interface OpenStream {
  write(chunk: string): void;
  end(): void;
  /** Events that arrived live while catching up; null once caught up. */
  held: LiveNotification[] | null;
  sent: Set<number>;
  /** The session record this stream lives by. */
  sessionKey: string;
  /** The client address it counts against (the classification's, rate-limit/address.ts). */
  address: string;
  /** Session checks and writes, in order: each waits for the one before. */
  queue: Promise<void>;
  open: boolean;
}

type EndReason = 'session-ended' | 'session-unverified' | 'too-many-streams';

const REPLAY_PAGE = 100;
const REPLAY_MAX_PAGES = 10;
/** How many sent ids a stream remembers to drop repeats (a retried job publishes its event again). */
const REMEMBERED_IDS = 1000;
/**
 * Retry-After on a refused stream, in seconds: an address's own streams end (or it closes some) before a
 * slot is free; a full instance frees slots as streams end or move to other instances.
 */
const RETRY_AFTER_ADDRESS_S = 60;
const RETRY_AFTER_FULL_S = 5;
/** After its lifetime a stream asks its client to come back within this many ms (at random, spread). */
const RECONNECT_MIN_MS = 500;
const RECONNECT_SPREAD_MS = 2000;

function refuse(reply: FastifyReply, code: ErrorCode, retryAfterS: number) {
  return reply
    .code(code === 'STREAMS_TOO_MANY' ? 429 : 503)
    .header('retry-after', String(retryAfterS))
    .send(errorBody(code));
}

const streamRoute: FastifyPluginAsync<StreamOptions> = async (app, opts) => {
  const byUser = new Map<string, Set<OpenStream>>();
  /** Open streams per client address, and in all. */
  const byAddress = new Map<string, number>();
  let total = 0;
  const keys = createKeys(opts.keyPrefix);
  const redis = app.redis.session as RoleCheckedRedis;
  const subscriber = await connectRedis({
    url: opts.redisSessionUrl,
    role: 'session',
    use: 'subscriber',
    name: 'gateway:live',
    log: app.log,
  });
  const channel = keys.liveNotifications();
  const deliver = (raw: string) => {
    let message: { userId?: string; notification?: LiveNotification };
    try {
      message = JSON.parse(raw);
    } catch {
      return;
    }
    const { userId, notification } = message;
    if (!userId || typeof notification?.id !== 'number') return;
    for (const stream of byUser.get(userId) ?? []) {
      if (stream.held) stream.held.push(notification);
      else whileSessionLives(stream, () => send(stream, notification));
    }
  };
  // SUBSCRIBE, or SSUBSCRIBE on a Redis Cluster (@atoll/redis pubsub.ts). A notification published while
  // the subscription is down is missed here, on any topology, as before; a client that reconnects gets it
  // from the catch-up (Last-Event-ID).
  await watchChannel(subscriber, channel, { message: deliver, down: () => {}, up: () => {} });

  /** Ends a stream with `event: end` and the reason; nothing is written on it afterwards. */
  function endStream(stream: OpenStream, reason: EndReason) {
    if (!stream.open) return;
    stream.open = false;
    stream.write(`event: end\ndata: ${JSON.stringify({ reason })}\n\n`);
    stream.end();
  }

  /**
   * Runs `write` after the stream's earlier writes, if its session still exists; else ends the stream.
   * One EXISTS per call.
   */
  function whileSessionLives(stream: OpenStream, write: () => void) {
    stream.queue = stream.queue.then(async () => {
      if (!stream.open) return;
      let alive: boolean;
      try {
        alive = (await redis.exists(stream.sessionKey)) === 1;
      } catch (err) {
        app.log.warn({ err: { message: (err as Error).message } }, 'live stream: session check failed');
        endStream(stream, 'session-unverified');
        return;
      }
      if (!stream.open) return;
      if (alive) write();
      else endStream(stream, 'session-ended');
    });
  }

  function send(stream: OpenStream, notification: LiveNotification) {
    if (stream.sent.has(notification.id)) return;
    stream.sent.add(notification.id);
    if (stream.sent.size > REMEMBERED_IDS) stream.sent.delete(stream.sent.values().next().value as number);
    stream.write(`id: ${notification.id}\nevent: notification\ndata: ${JSON.stringify(notification)}\n\n`);
  }

  /** What came after `lastId`, from the notifier (PostgreSQL), oldest first. */
  async function missedSince(request: FastifyRequest, lastId: number): Promise<LiveNotification[]> {
    const missed: LiveNotification[] = [];
    for (let after = lastId, page = 0; page < REPLAY_MAX_PAGES; page += 1) {
      const target = `/api/notifications?after=${after}&limit=${REPLAY_PAGE}`;
      const res = await withInstances(opts.notifier, 'GET', (instance) =>
        httpRequest(`${instance}${target}`, {
          headers: {
            [REQUEST_ID_HEADER]: request.id,
            [IDENTITY_HEADER]: assertionFor(opts.signer, request, 'notifier', 'GET', target),
          },
          headersTimeout: 5000,
          bodyTimeout: 5000,
        }),
      );
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`notifier answered ${res.statusCode}`);
      }
      const body = (await res.body.json()) as { notifications: LiveNotification[] };
      missed.push(...body.notifications);
      const last = body.notifications.at(-1);
      if (body.notifications.length < REPLAY_PAGE || !last) break;
      after = last.id;
    }
    return missed;
  }

  /** Ends a stream after its lifetime, in order after its earlier writes, asking the client to come back. */
  function retire(stream: OpenStream) {
    stream.queue = stream.queue.then(() => {
      if (!stream.open) return;
      stream.open = false;
      const retryMs = RECONNECT_MIN_MS + Math.floor(Math.random() * RECONNECT_SPREAD_MS);
      stream.write(`retry: ${retryMs}\nevent: reconnect\ndata: {"reason":"max-lifetime"}\n\n`);
      stream.end();
    });
  }

  // HEAD would run the handler and hold a stream that can carry nothing: not served (the proxy answers).
  app.get('/api/notifications/stream', { exposeHeadRoute: false }, async (request, reply) => {
    const caller = request.caller;
    if (caller.kind === 'unknown') {
      return reply.code(503).send(errorBody('SESSION_STORE_UNAVAILABLE'));
    }
    if (caller.kind !== 'user') return reply.code(401).send(errorBody('TOKEN_MISSING'));
    const userId = caller.identity.userId;
    const address = request.classification.address;
    const mine = byUser.get(userId) ?? new Set();
    // A new stream of a user at their cap ends their oldest: that one's slot is this one's.
    const replaced = mine.size >= opts.maxStreamsPerUser ? mine.values().next().value : undefined;
    if (total - (replaced ? 1 : 0) >= opts.maxStreams) {
      request.log.warn({ streams: total }, 'live stream refused: this instance holds its maximum');
      return refuse(reply, 'STREAMS_UNAVAILABLE', RETRY_AFTER_FULL_S);
    }
    const fromAddress = (byAddress.get(address) ?? 0) - (replaced?.address === address ? 1 : 0);
    if (fromAddress >= opts.maxStreamsPerAddress)
      return refuse(reply, 'STREAMS_TOO_MANY', RETRY_AFTER_ADDRESS_S);
    const header = request.headers['last-event-id'];
    const lastId = typeof header === 'string' && /^\d{1,15}$/.test(header) ? Number(header) : null;

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
      [REQUEST_ID_HEADER]: request.id,
    });
    res.write('retry: 2000\n\n');
    const stream: OpenStream = {
      write: (chunk) => void res.write(chunk),
      end: () => res.end(),
      held: lastId === null ? null : [],
      sent: new Set(),
      sessionKey: keys.session(caller.identity.sessionId),
      address,
      queue: Promise.resolve(),
      open: true,
    };
    byUser.set(userId, mine);
    // Oldest first (a Set keeps insertion order): make room for this one.
    for (const old of mine) {
      if (mine.size < opts.maxStreamsPerUser) break;
      mine.delete(old);
      endStream(old, 'too-many-streams');
    }
    mine.add(stream);
    total += 1;
    byAddress.set(address, (byAddress.get(address) ?? 0) + 1);
    const heartbeat = setInterval(
      () => whileSessionLives(stream, () => stream.write(': heartbeat\n\n')),
      opts.heartbeatMs,
    );
    const lifetime = setTimeout(() => retire(stream), opts.maxLifetimeMs * (0.9 + Math.random() * 0.1));
    res.on('close', () => {
      stream.open = false;
      clearInterval(heartbeat);
      clearTimeout(lifetime);
      mine.delete(stream);
      if (mine.size === 0 && byUser.get(userId) === mine) byUser.delete(userId);
      total -= 1;
      const left = (byAddress.get(address) ?? 1) - 1;
      if (left > 0) byAddress.set(address, left);
      else byAddress.delete(address);
    });

    if (lastId !== null) {
      try {
        const missed = await missedSince(request, lastId);
        whileSessionLives(stream, () => {
          for (const notification of missed) send(stream, notification);
        });
      } catch (err) {
        // Without the catch-up the stream would have a gap: end it; the client retries with its id.
        request.log.warn({ err: { message: (err as Error).message } }, 'live stream catch-up failed');
        res.end();
        return;
      }
      const held = stream.held ?? [];
      stream.held = null;
      whileSessionLives(stream, () => {
        for (const notification of held) send(stream, notification);
      });
    }
  });

  app.addHook('preClose', async () => {
    for (const streams of byUser.values()) {
      for (const stream of streams) {
        if (!stream.open) continue;
        stream.open = false;
        stream.write('event: shutdown\ndata: {}\n\n');
        stream.end();
      }
    }
  });
  app.addHook('onClose', async () => {
    await closeRedis(subscriber);
  });
};

export default streamRoute;
