/**
 * The identity assertion the gateway attaches to every request it sends a service (@atoll/identity):
 * who is calling (the resolved session, "nobody", or "unknown" when redis-session could not be asked),
 * from which address, bound to that service, the method, the request target the service will receive and
 * the request id. Only the gateway holds the signing key.
 */
import type { BatchingSigner } from '@atoll/identity';
import type { FastifyRequest } from 'fastify';
import type { Upstream } from './table.ts';

/**
 * The request target a service receives when the proxy forwards `url` (@fastify/reply-from resolves it
 * against the upstream with the WHATWG URL parser, which percent-encodes a few characters such as `'`
 * and `"`, and keeps a query it would drop as empty from the original): the assertion is bound to this,
 * byte for byte.
 */
export function upstreamTarget(url: string): string {
  const dest = new URL(url.startsWith('//') ? `.${url}` : url, 'http://upstream');
  const q = url.indexOf('?');
  return dest.pathname + (dest.search || (q > 0 ? url.slice(q) : ''));
}

/** The assertion for one request to `audience`: signed with the others of its event-loop turn. */
export function assertionFor(
  signer: BatchingSigner,
  request: FastifyRequest,
  audience: Upstream,
  method: string,
  target: string,
): Promise<string> {
  const caller = request.caller;
  return signer.sign({
    audience,
    method,
    url: target,
    requestId: request.id,
    clientIp: request.ip,
    identity: caller?.kind === 'user' ? caller.identity : null,
    sessionUnavailable: caller?.kind === 'unknown',
  });
}
