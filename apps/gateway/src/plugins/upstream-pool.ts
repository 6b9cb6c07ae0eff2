/**
 * The instances of one upstream service (AUTH_URL, CONTENT_URL, NOTIFIER_URL may each list several), and
 * the rules for sending a request to them again when one fails. Pure: no I/O, the clock is injected.
 *
 * - Each request goes to the next instance in turn (round robin). An instance that could not be reached
 *   (connection refused, connect timeout, no route) is skipped for `ejectMs` (passive health), and so is
 *   one that says it drains (its responses carry `x-atoll-draining`: it is about to close its
 *   connections). An instance that answers without draining is no longer skipped.
 * - When every instance not yet tried for this request is skipped, one is tried anyway, since a 502
 *   without trying is worse than a refused connection: an unreachable one before a draining one. A
 *   refused connection is safe to send elsewhere, and the instance may be back; a draining instance
 *   closes its idle connections when its drain ends, and a request written on one just then is lost
 *   with a reset the gateway cannot tell from a crash, so a POST would fail.
 * - A failed attempt is sent again, to an instance not yet tried, at most `maxAttempts` times in all (the
 *   number of instances, at most MAX_ATTEMPTS), and never once any byte of the response has reached the
 *   client (the proxy only gets to decide before the response headers arrive).
 * - What may be sent again depends on whether the service can have seen the request (`failureKind`):
 *   - `unsent`: the connection was never made, or a reused keep-alive connection was closed by the
 *     service before it answered (the race of an idle connection a draining service closes just as the
 *     gateway writes on it: a draining service never closes a connection with a request in progress).
 *     The service did not run it: any method goes to another instance.
 *   - `sent`: the connection failed after the request may have reached the service (a reset, a fresh
 *     connection closed without an answer: a crash). Only GET, HEAD and OPTIONS go again. RFC 9110 also
 *     counts PUT and DELETE as idempotent, but in atoll their answers are not: a PUT that changes an
 *     article's title moves its slug, so the same PUT again finds no article (404), and a DELETE that
 *     took effect is a 404 the second time; the client would see an error for what succeeded.
 *   - `timeout`: never again. The request's time budget (UPSTREAM_TIMEOUT_MS) is shared by its attempts,
 *     and a service too slow to answer is usually overloaded: a second request would add to the load.
 */

import { NEVER_CONNECTED } from '@atoll/service-kit';

/** The most attempts one request gets, whatever the number of instances. */
export const MAX_ATTEMPTS = 3;
/** How long an instance that could not be reached is skipped. */
export const DEFAULT_EJECT_MS = 1500;

export type FailureKind = 'unsent' | 'sent' | 'timeout';

/** Methods sent again after a failure the service may have seen (see above for PUT and DELETE). */
const REPEATABLE = new Set(['GET', 'HEAD', 'OPTIONS']);

/** No connection was made: the request never left the gateway, and the instance is unreachable. */
const UNREACHABLE = NEVER_CONNECTED;

const TIMEOUTS = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'FST_REPLY_FROM_GATEWAY_TIMEOUT',
]);

export interface UpstreamError {
  code?: string | undefined;
  /** undici's SocketError: the connection's byte counts when it failed. */
  socket?: { bytesRead?: number } | undefined;
  cause?: unknown;
}

/** The error undici raised, under the wrappers @fastify/reply-from puts around it. */
export function rootCause(error: UpstreamError): UpstreamError {
  let current = error;
  for (let depth = 0; depth < 5 && current.cause && typeof current.cause === 'object'; depth += 1) {
    current = current.cause as UpstreamError;
  }
  return current;
}

/** Whether the service can have seen a request whose attempt failed with `error` (see above). */
export function failureKind(error: UpstreamError): FailureKind {
  const cause = rootCause(error);
  const code = cause.code ?? error.code ?? '';
  if (UNREACHABLE.has(code)) return 'unsent';
  if (TIMEOUTS.has(code) || TIMEOUTS.has(error.code ?? '')) return 'timeout';
  // A connection that had carried responses before (bytes read) and was closed with no answer to this one.
  if (code === 'UND_ERR_SOCKET' && (cause.socket?.bytesRead ?? 0) > 0) return 'unsent';
  return 'sent';
}

/** Whether the instance should be skipped for a while. */
export function isUnreachable(error: UpstreamError): boolean {
  return UNREACHABLE.has(rootCause(error).code ?? '');
}

/** Whether a request with `method` whose attempt failed this way may go to another instance. */
export function mayRetry(kind: FailureKind, method: string): boolean {
  if (kind === 'unsent') return true;
  if (kind === 'sent') return REPEATABLE.has(method.toUpperCase());
  return false;
}

export interface PoolOptions {
  ejectMs?: number;
  now?: () => number;
}

export class UpstreamPool {
  readonly instances: readonly string[];
  /** Attempts one request may make: one per instance, at most MAX_ATTEMPTS. */
  readonly maxAttempts: number;
  private readonly ejectMs: number;
  private readonly now: () => number;
  /** Skipped instances: until when, and whether they drain (else they could not be reached). */
  private readonly skipped = new Map<string, { until: number; draining: boolean }>();
  private turn = 0;

  constructor(instances: readonly string[], opts: PoolOptions = {}) {
    if (instances.length === 0) throw new Error('an upstream needs at least one instance');
    this.instances = [...instances];
    this.maxAttempts = Math.min(instances.length, MAX_ATTEMPTS);
    this.ejectMs = opts.ejectMs ?? DEFAULT_EJECT_MS;
    this.now = opts.now ?? Date.now;
  }

  /**
   * The instance for the next attempt: the next in turn that `tried` does not hold, preferring one that
   * is not skipped, then one that could not be reached over one that drains; undefined once every
   * instance was tried.
   */
  pick(tried: ReadonlySet<string> = new Set()): string | undefined {
    const n = this.instances.length;
    const now = this.now();
    let unreachable: number | undefined;
    let draining: number | undefined;
    for (let i = 0; i < n; i += 1) {
      const index = (this.turn + i) % n;
      const url = this.instances[index] as string;
      if (tried.has(url)) continue;
      const skip = this.skipped.get(url);
      if (skip && skip.until > now) {
        if (skip.draining) draining ??= index;
        else unreachable ??= index;
        continue;
      }
      this.turn = (index + 1) % n;
      return url;
    }
    const fallback = unreachable ?? draining;
    if (fallback === undefined) return undefined;
    this.turn = (fallback + 1) % n;
    return this.instances[fallback];
  }

  /** The instance could not be reached: skip it for a while. */
  markUnreachable(url: string): void {
    this.skipped.set(url, { until: this.now() + this.ejectMs, draining: false });
  }

  /** The instance answered that it drains: skip it for a while, and try it last. */
  markDraining(url: string): void {
    this.skipped.set(url, { until: this.now() + this.ejectMs, draining: true });
  }

  /** The instance answered, and does not drain: stop skipping it. */
  markReachable(url: string): void {
    if (this.skipped.size > 0) this.skipped.delete(url);
  }
}

/**
 * Runs `attempt` (a request of its own, e.g. the live stream's catch-up) on the pool's instances in turn
 * until one succeeds, under the same rules as the proxy: the last error if none does.
 */
export async function withInstances<T>(
  pool: UpstreamPool,
  method: string,
  attempt: (instance: string) => Promise<T>,
): Promise<T> {
  const tried = new Set<string>();
  for (;;) {
    const instance = pool.pick(tried) as string;
    tried.add(instance);
    try {
      const result = await attempt(instance);
      pool.markReachable(instance);
      return result;
    } catch (err) {
      const error = err as UpstreamError;
      if (isUnreachable(error)) pool.markUnreachable(instance);
      if (tried.size >= pool.maxAttempts || !mayRetry(failureKind(error), method)) throw err;
    }
  }
}
