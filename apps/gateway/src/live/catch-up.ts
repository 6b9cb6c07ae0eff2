/**
 * The catch-up of a stream that reconnects with `Last-Event-ID`: what came after that id, from the
 * durable store (the notifier's `GET /api/notifications?after=<id>`, PostgreSQL), oldest first, in pages,
 * read with @atoll/events' live notification schema. Pub/sub dropping messages while the client was away
 * costs it nothing.
 */
import { decodeCatchUpPage, type LiveNotification } from '@atoll/events';
import { type BatchingSigner, IDENTITY_HEADER } from '@atoll/identity';
import { REQUEST_ID_HEADER } from '@atoll/service-kit';
import type { FastifyRequest } from 'fastify';
import { request as httpRequest } from 'undici';
import { type UpstreamPool, withInstances } from '../plugins/upstream-pool.ts';
import { assertionFor } from '../routes/assertion.ts';

export const REPLAY_PAGE = 100;
export const REPLAY_MAX_PAGES = 10;

export interface CatchUpOptions {
  /** The notifier's instances: asked in turn. */
  notifier: UpstreamPool;
  signer: BatchingSigner;
}

/** One page after `after`, for the caller of `request`; throws unless the notifier answers 200 with a page. */
async function page(opts: CatchUpOptions, request: FastifyRequest, after: number) {
  const target = `/api/notifications?after=${after}&limit=${REPLAY_PAGE}`;
  const res = await withInstances(opts.notifier, 'GET', async (instance) =>
    httpRequest(`${instance}${target}`, {
      headers: {
        [REQUEST_ID_HEADER]: request.id,
        [IDENTITY_HEADER]: await assertionFor(opts.signer, request, 'notifier', 'GET', target),
      },
      headersTimeout: 5000,
      bodyTimeout: 5000,
    }),
  );
  if (res.statusCode !== 200) {
    await res.body.dump();
    throw new Error(`notifier answered ${res.statusCode}`);
  }
  return decodeCatchUpPage(await res.body.json());
}

/** What came after `lastId`, oldest first: at most REPLAY_MAX_PAGES pages of REPLAY_PAGE. */
export async function missedSince(
  opts: CatchUpOptions,
  request: FastifyRequest,
  lastId: number,
): Promise<LiveNotification[]> {
  const missed: LiveNotification[] = [];
  for (let after = lastId, pages = 0; pages < REPLAY_MAX_PAGES; pages += 1) {
    const notifications = await page(opts, request, after);
    missed.push(...notifications);
    const last = notifications.at(-1);
    if (notifications.length < REPLAY_PAGE || !last) break;
    after = last.id;
  }
  return missed;
}
