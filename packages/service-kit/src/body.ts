/**
 * An empty body is no body. Many clients (Postman among them) send `Content-Type: application/json` on
 * every request, also on the ones that carry nothing (`POST /api/articles/:slug/favorite`, every DELETE),
 * and Fastify would answer those 400 (`FST_ERR_CTP_EMPTY_JSON_BODY`), or 415 for a type it has no
 * parser for. Here:
 * - a request whose framing says it has no body (no `Transfer-Encoding`, `Content-Length` absent or 0) is
 *   not parsed at all, whatever its Content-Type says: the header is dropped before Fastify looks for a
 *   parser (`dropEmptyBodyType`, called from the base plugin's first hook);
 * - the JSON parser reads a body of only whitespace (or a chunked body that turns out empty) as no body.
 * Either way the route sees `request.body === undefined`: a route that needs a body answers its usual 422,
 * one that takes none just runs. A non-empty body that is not JSON stays a 400 (`MALFORMED_BODY`), and
 * one whose strings contain U+0000 is a 422 before any route sees it; lone surrogates in its strings
 * arrive as U+FFFD (unsafe-text.ts).
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { nulInJson, wellFormedJson } from './unsafe-text.ts';

const BLANK = /^[ \t\r\n]*$/;

/** Drops the Content-Type of a request that has no body, so that nothing tries to parse one. */
export function dropEmptyBodyType(headers: IncomingHttpHeaders): void {
  if (headers['content-type'] === undefined || headers['transfer-encoding'] !== undefined) return;
  const length = headers['content-length'];
  if (length === undefined || length === '0') delete headers['content-type'];
}

/** Replaces Fastify's JSON parser by one that reads an empty or blank body as no body. */
export function installJsonParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser(
    app.initialConfig.onProtoPoisoning ?? 'error',
    app.initialConfig.onConstructorPoisoning ?? 'error',
  );
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const text = body as string; // parseAs: 'string'
    if (BLANK.test(text)) return done(null, undefined);
    return parse(request, text, (err, value) => {
      if (err) return done(err);
      // PostgreSQL cannot store U+0000: refused here for every route; lone surrogates become U+FFFD,
      // as PostgreSQL would store them (unsafe-text.ts).
      const nul = nulInJson(text, value);
      return nul ? done(nul) : done(null, wellFormedJson(text, value));
    });
  });
}
