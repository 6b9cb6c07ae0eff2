/**
 * Errors of an outgoing request that never reached its server: no address for the name, no connection.
 * Such a request may be sent again whatever its method (the server cannot have run it). The gateway's
 * upstream pool and auth's requests to the OpenID provider both decide with this set.
 */
export const NEVER_CONNECTED: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** An error and its causes, outermost first, at most `depth` of them. */
export function errorChain(err: unknown, depth = 5): unknown[] {
  const chain: unknown[] = [];
  for (let e = err; e && chain.length < depth; e = (e as { cause?: unknown }).cause) chain.push(e);
  return chain;
}
