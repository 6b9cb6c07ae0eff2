/**
 * What the bench compares, in one table: each path with its reference, the ratio it should reach
 * (`target`, path rate ÷ reference rate, the median over interleaved rounds) and the highest ratio that
 * is physically possible (`upperBound`). A median above its bound says the measurement is wrong (the
 * machine was busy during the reference's turn, a path answered errors fast, …), not that the code is
 * fast: it is reported as suspect, and so is every other target of that path.
 *
 * Entries without a target are shown; entries with only a bound are there to catch impossible results.
 */
/** The notifier's workers and the raw BullMQ reference run at the same concurrency. */
export const WORKER_CONCURRENCY = 16;

export const NAMES = {
  nodeHttp: 'node:http hello-world',
  bare: 'Fastify hello-world',
  bareArticle: 'Fastify, the same 2.5 KB bytes as an article',
  proxy: 'Fastify proxy → Fastify hello-world',
  anonymousRead: 'gateway: anonymous cached read',
  authenticatedRead: 'gateway: authenticated cached read',
  passThrough: 'gateway: proxied pass-through (GET /api/tags)',
  l1: 'content: L1 hit',
  l2: 'content: L2 hit',
  uncached: 'content: uncached',
  createArticle: 'gateway: create article',
  addComment: 'gateway: add comment',
  favorite: 'gateway: favorite + unfavorite',
  sameSqlCreateArticle: 'same SQL: create article (Fastify + pg)',
  sameSqlAddComment: 'same SQL: add comment (Fastify + pg)',
  sameSqlFavorite: 'same SQL: favorite + unfavorite (Fastify + pg)',
  hmac: 'identity assertion: HMAC-SHA256 sign + verify',
  ed25519: 'identity assertion: Ed25519 sign + verify',
  ed25519Batch: 'identity assertion: Ed25519, 4 per signature, sign + verify',
  redisGet: 'redis GET (ioredis, one client)',
  session: 'session resolution alone',
  queueAdd: 'BullMQ Queue.add (raw)',
  enqueue: 'enqueue through the jobs contract',
  rawWorker: `raw BullMQ no-op worker (concurrency ${WORKER_CONCURRENCY})`,
  notifier: `notifier processing (concurrency ${WORKER_CONCURRENCY})`,
} as const;

export interface Comparison {
  path: string;
  reference: string;
  /** The median ratio (path ÷ reference) to reach; none: the ratio is shown, not judged. */
  target?: number;
  /** Above this median ratio the result is impossible, hence suspect. */
  upperBound?: number;
}

const N = NAMES;
/** Doing more work than the reference cannot be faster than it. */
const AT_MOST_THE_REFERENCE = 1;

export const COMPARISONS: Comparison[] = [
  // The references among themselves: each adds work to the one before.
  { path: N.bare, reference: N.nodeHttp, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.bareArticle, reference: N.bare, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.proxy, reference: N.bare, upperBound: AT_MOST_THE_REFERENCE },
  // Through the gateway: a proxy in front of content, so never faster than the bare proxy.
  { path: N.passThrough, reference: N.bare, target: 0.5, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.passThrough, reference: N.proxy, target: 0.9, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.authenticatedRead, reference: N.bare, target: 0.35, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.authenticatedRead, reference: N.proxy, target: 0.8, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.anonymousRead, reference: N.proxy, target: 0.8, upperBound: AT_MOST_THE_REFERENCE },
  // Content direct: a cache hit is at best a Fastify answer of the same size; L2 adds a Redis read to L1.
  { path: N.l1, reference: N.bare, target: 0.85, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.l1, reference: N.bareArticle, target: 0.9, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.l2, reference: N.bare, target: 0.6, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.l2, reference: N.l1, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.l2, reference: N.uncached, target: 2 },
  // Writes: at best the same SQL on a bare Fastify + pg; half of it is the target. A comment's SQL is
  // smaller than an article's: it should cost no more per request.
  {
    path: N.createArticle,
    reference: N.sameSqlCreateArticle,
    target: 0.5,
    upperBound: AT_MOST_THE_REFERENCE,
  },
  { path: N.addComment, reference: N.sameSqlAddComment, target: 0.5, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.favorite, reference: N.sameSqlFavorite, target: 0.5, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.addComment, reference: N.createArticle, target: 1 },
  // In process.
  { path: N.ed25519, reference: N.hmac },
  { path: N.ed25519Batch, reference: N.hmac },
  { path: N.session, reference: N.redisGet, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.enqueue, reference: N.queueAdd, upperBound: AT_MOST_THE_REFERENCE },
  { path: N.notifier, reference: N.rawWorker, target: 0.7, upperBound: AT_MOST_THE_REFERENCE },
];
