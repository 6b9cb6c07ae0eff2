/**
 * `GET /api/notifications/stream`: the signed-in user's notifications, live, as Server-Sent Events.
 * In parts: the hub (src/live/hub.ts: the one subscription, the streams by user and address, the caps,
 * one timer), a stream (src/live/stream.ts), the catch-up (src/live/catch-up.ts) and their pure rules
 * (src/live/rules.ts). This route admits, opens and hands over.
 *
 * - Fan-out: the notifier publishes every new notification on one redis-session pub/sub channel; each
 *   gateway instance subscribes once and writes each message to the streams it holds for the recipient.
 *   The message is @atoll/events' live message (one versioned schema for the notifier, the gateway and
 *   the catch-up); one that does not decode is dropped and counted, never written to a stream.
 * - Every event has an id (the notification's id in PostgreSQL): `id: 42`, `event: notification`,
 *   `data: {...}`. A client that reconnects with `Last-Event-ID` (browsers' EventSource do it by
 *   themselves) first gets what came after that id from the durable store — the notifier's
 *   `GET /api/notifications?after=<id>` — then the live events, so pub/sub dropping messages while it
 *   was away costs nothing. Live events that arrive during that catch-up are held and sent after it;
 *   the catch-up sends each id once, and an id among the last 64 sent on this stream is not sent again
 *   (a retried job publishes its event again soon after). (Across reconnects an id can come again:
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
 * - When the instance's subscription to the channel is reported back after it was down (redis-session
 *   restarted, failed over, or cut the connection; on a cluster, a subscriber replaced), every stream
 *   open on it gets `retry: <0.5–10.5 s>` and `event: reconnect` with `{"reason":"missed-events"}` and
 *   ends: its client comes back with its Last-Event-ID and the catch-up brings what was published
 *   meanwhile (hub.ts).
 */
import type { BatchingSigner } from '@atoll/identity';
import { closeRedis, connectRedis, type RoleCheckedRedis } from '@atoll/redis';
import { createKeys } from '@atoll/redis-keys';
import { errorBody, REQUEST_ID_HEADER, type Registry } from '@atoll/service-kit';
import type { FastifyPluginAsync } from 'fastify';
import { missedSince } from '../live/catch-up.ts';
import { LiveHub } from '../live/hub.ts';
import { frames, lastEventId } from '../live/rules.ts';
import type { UpstreamPool } from '../plugins/upstream-pool.ts';

export interface StreamOptions {
  keyPrefix: string;
  redisSessionUrl: string;
  /** The notifier's instances: the catch-up asks them in turn. */
  notifier: UpstreamPool;
  signer: BatchingSigner;
  heartbeatMs: number;
  maxStreamsPerUser: number;
  maxStreamsPerAddress: number;
  maxStreams: number;
  maxLifetimeMs: number;
  registry: Registry;
}

const streamRoute: FastifyPluginAsync<StreamOptions> = async (app, opts) => {
  const keys = createKeys(opts.keyPrefix);
  const redis = app.redis.session as RoleCheckedRedis;
  const hub = new LiveHub({
    ...opts,
    sessionExists: async (sessionKey) => (await redis.exists(sessionKey)) === 1,
    log: app.log,
  });
  const subscriber = await connectRedis({
    url: opts.redisSessionUrl,
    role: 'session',
    use: 'subscriber',
    name: 'gateway:live',
    log: app.log,
  });
  await hub.listen(subscriber, keys.liveNotifications());

  // HEAD would run the handler and hold a stream that can carry nothing: not served (the proxy answers).
  app.get('/api/notifications/stream', { exposeHeadRoute: false }, async (request, reply) => {
    const caller = request.caller;
    if (caller.kind === 'unknown') {
      return reply.code(503).send(errorBody('SESSION_STORE_UNAVAILABLE'));
    }
    if (caller.kind !== 'user') return reply.code(401).send(errorBody('TOKEN_MISSING'));
    const { userId, sessionId } = caller.identity;
    const address = request.classification.address;
    const admission = hub.admit(userId, address);
    if (!admission.ok) {
      if (admission.code === 'STREAMS_UNAVAILABLE')
        request.log.warn('live stream refused: this instance holds its maximum');
      return reply
        .code(admission.status)
        .header('retry-after', String(admission.retryAfterS))
        .send(errorBody(admission.code));
    }
    const lastId = lastEventId(request.headers['last-event-id']);

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no', // nginx: do not buffer the stream
      [REQUEST_ID_HEADER]: request.id,
    });
    res.write(frames.open);
    const stream = hub.open(res, { userId, address, sessionKey: keys.session(sessionId) }, lastId !== null);
    if (lastId === null) return;
    try {
      stream.caughtUp(await missedSince(opts, request, lastId));
    } catch (err) {
      // Without the catch-up the stream would have a gap: end it; the client retries with its id.
      request.log.warn({ err: { message: (err as Error).message } }, 'live stream catch-up failed');
      stream.abort();
    }
  });

  app.addHook('preClose', async () => hub.shutdown());
  app.addHook('onClose', async () => {
    hub.close();
    await closeRedis(subscriber);
  });
};

export default streamRoute;
