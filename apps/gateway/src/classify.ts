/**
 * What a request is to the gateway, decided once per request, at the door (plugins/door.ts), from its
 * method, its URL as sent and its client address, and read by everything after it: the JSON check, the
 * session, CSRF, the rate limits and the proxy. Nothing else parses the path.
 *
 * Every decision reads the path as it was sent, without the query string and without one trailing slash
 * (`/api/users/` is `/api/users`); a path with more than one spelling is refused at the door before any
 * of them is made (routes/canonical.ts), so the router and the services read the same path.
 */
import type { Tier } from './config.ts';
import { limitAddress } from './rate-limit/address.ts';
import { upstreamTarget } from './routes/assertion.ts';
import { canonicalPath, hidesDotSegment } from './routes/canonical.ts';
import {
  ENDPOINT_TIERS,
  ROUTE_TABLE,
  type RouteEntry,
  SIGN_IN_ENDPOINTS,
  UNLIMITED_PATHS,
  type Upstream,
} from './routes/table.ts';

export interface Classification {
  /** The canonical spelling of the path when it is not canonical (the door refuses the request), else null. */
  nonCanonical: string | null;
  /** The path holds a dot segment once percent-decoded (`/a/..%2Fb`): the door refuses it too. */
  hiddenDotSegment: boolean;
  /** The path without its query string and without a trailing slash: what the decisions below read. */
  path: string;
  /** The route-table entry the path is under; undefined for the gateway's own routes and unknown paths. */
  route: RouteEntry | undefined;
  /** The service the request goes to, if it is proxied. */
  upstream: Upstream | undefined;
  /** A body must be JSON (415 otherwise): a proxied route that does not take any body. */
  expectsJson: boolean;
  /** Sign-up or login: a session cookie sent along authenticates nothing (plugins/csrf.ts). */
  signIn: boolean;
  /** Whether the rate limits count the request at all (the probes and /metrics are not counted). */
  limited: boolean;
  /** The endpoint tier (`auth`, `mail`) counted on top of the caller's, if any. */
  endpointTier: Tier | undefined;
  /** The client address the limits count (IPv6 by /64, rate-limit/address.ts). */
  address: string;
  /** The upstream time budget: the longest matching prefix's of UPSTREAM_ROUTE_TIMEOUTS, else the default. */
  timeoutMs: number;
  /**
   * The request target the upstream receives (routes/assertion.ts `upstreamTarget`), which its identity
   * assertion is bound to; '' when the request is not proxied or not canonical.
   */
  target: string;
}

export interface ClassifierOptions {
  /** Per-prefix upstream timeouts, longest prefix first (UPSTREAM_ROUTE_TIMEOUTS). */
  routeTimeouts: ReadonlyArray<{ prefix: string; timeoutMs: number }>;
  /** UPSTREAM_TIMEOUT_MS. */
  defaultTimeoutMs: number;
}

export type Classify = (method: string, url: string, clientIp: string) => Classification;

/** A prefix matches itself and every path below it. */
const under = (path: string, prefix: string) =>
  path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47); // '/'

/** The classification of requests for one configuration: a pure function of method, URL and address. */
export function classifier(opts: ClassifierOptions): Classify {
  return (method, url, clientIp) => {
    const q = url.indexOf('?');
    const sent = q === -1 ? url : url.slice(0, q);
    const nonCanonical = canonicalPath(sent);
    const hiddenDotSegment = nonCanonical === null && hidesDotSegment(sent);
    const path = sent.length > 1 && sent.endsWith('/') ? sent.slice(0, -1) : sent;
    const route = ROUTE_TABLE.find((r) => under(path, r.prefix));
    // HEAD runs what GET runs (Fastify answers it with the GET route): it costs what GET costs.
    const tierMethod = method === 'HEAD' ? 'GET' : method;
    const endpointTier =
      route === undefined ? undefined : ENDPOINT_TIERS.find(([m, p]) => m === tierMethod && p === path)?.[2];
    const timeout = route === undefined ? undefined : opts.routeTimeouts.find((r) => under(path, r.prefix));
    return {
      nonCanonical,
      hiddenDotSegment,
      path,
      route,
      upstream: route?.upstream,
      expectsJson: route !== undefined && !route.anyBody,
      signIn: method === 'POST' && SIGN_IN_ENDPOINTS.some(([, p]) => p === path),
      limited: !UNLIMITED_PATHS.has(path),
      endpointTier,
      address: limitAddress(clientIp),
      timeoutMs: timeout?.timeoutMs ?? opts.defaultTimeoutMs,
      target: route !== undefined && nonCanonical === null && !hiddenDotSegment ? upstreamTarget(url) : '',
    };
  };
}
