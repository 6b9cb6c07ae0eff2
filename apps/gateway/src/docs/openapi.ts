/**
 * The public API reference, assembled from the services' own route schemas: `GET /api/openapi.json`
 * merges the OpenAPI 3.1 document each service describes itself with (`GET /internal/openapi.json`,
 * @atoll/service-kit, asked with an identity assertion like any request to a service) and the gateway's
 * own routes, keeping only public paths (the route table's prefixes, the health routes, the docs).
 * `GET /api/docs` shows it with Scalar, served from the npm package (no CDN at runtime: its script is
 * `/api/docs/js/scalar.js`, its fonts the system's). Scalar's plugin is one 5 MB module (about 25 MiB of
 * the gateway's memory), so it is loaded on the first request for the page, into a Fastify instance of
 * its own (`onDemandApp`, @atoll/service-kit) that the gateway's `/api/docs` routes hand their requests to.
 *
 * The merged document is kept for a short while once every service answered; while one does not, the
 * document is assembled from the others on each request and says which are missing
 * (`x-atoll-missing`), so the reference never fails as a whole.
 */
import { type BatchingSigner, IDENTITY_HEADER } from '@atoll/identity';
import { INTERNAL_OPENAPI_PATH, onDemandApp, REQUEST_ID_HEADER } from '@atoll/service-kit';
// `schema.summary`/`tags` and `app.swagger()` (registered by @atoll/service-kit) are typed by its augmentation.
import type {} from '@fastify/swagger';
import Fastify, { type FastifyPluginAsync, type FastifyReply, type FastifyRequest } from 'fastify';
import { request as undiciRequest } from 'undici';
import { type UpstreamPool, withInstances } from '../plugins/upstream-pool.ts';
import { assertionFor } from '../routes/assertion.ts';
import { ROUTE_TABLE, type Upstream } from '../routes/table.ts';

interface OpenApiDocument {
  openapi: string;
  info: Record<string, unknown>;
  paths?: Record<string, Record<string, unknown>>;
  components?: Record<string, Record<string, unknown>>;
  [extension: `x-${string}`]: unknown;
}

export const OPENAPI_PATH = '/api/openapi.json';
export const DOCS_PATH = '/api/docs';
const CACHE_MS = 30_000;
const DOCS_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-inline'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
].join('; ');

function isPublic(path: string): boolean {
  return (
    path.startsWith('/health/') ||
    path.startsWith('/api/docs') ||
    path === OPENAPI_PATH ||
    ROUTE_TABLE.some((r) => path === r.prefix || path.startsWith(`${r.prefix}/`))
  );
}

/** One document out of several: public paths and components, first come first kept. */
export function mergeDocuments(parts: OpenApiDocument[], missing: string[]): OpenApiDocument {
  const merged: OpenApiDocument = {
    openapi: '3.1.0',
    info: {
      title: 'atoll API',
      version: '1.0.0',
      description:
        'The public API of atoll, through its gateway. RealWorld ("Conduit") compatible, plus sessions, sign-in with Google, verification, rankings and notifications. Errors look like {"errors": {"<field>": ["<message>"]}, "code": "<CODE>"}.',
    },
    servers: [{ url: '/' }],
    paths: {},
    components: {},
  } as OpenApiDocument;
  for (const part of parts) {
    for (const [path, item] of Object.entries(part.paths ?? {})) {
      if (!isPublic(path)) continue;
      merged.paths![path] = { ...merged.paths![path], ...item };
    }
    for (const [kind, entries] of Object.entries(part.components ?? {})) {
      merged.components![kind] = { ...entries, ...merged.components![kind] };
    }
  }
  if (missing.length > 0) merged['x-atoll-missing'] = missing;
  return merged;
}

export interface DocsOptions {
  signer: BatchingSigner;
  pools: Record<Upstream, UpstreamPool>;
  timeoutMs: number;
}

const docs: FastifyPluginAsync<DocsOptions> = async (app, opts) => {
  let cached: { doc: OpenApiDocument; until: number } | null = null;

  const fetchDocument = async (request: FastifyRequest, name: Upstream): Promise<OpenApiDocument | null> => {
    try {
      const res = await withInstances(opts.pools[name], 'GET', async (instance) =>
        undiciRequest(`${instance}${INTERNAL_OPENAPI_PATH}`, {
          headers: {
            [REQUEST_ID_HEADER]: request.id,
            [IDENTITY_HEADER]: await assertionFor(opts.signer, request, name, 'GET', INTERNAL_OPENAPI_PATH),
          },
          headersTimeout: opts.timeoutMs,
          bodyTimeout: opts.timeoutMs,
        }),
      );
      if (res.statusCode !== 200) {
        await res.body.dump();
        return null;
      }
      return (await res.body.json()) as OpenApiDocument;
    } catch {
      return null;
    }
  };

  app.get(
    OPENAPI_PATH,
    { schema: { summary: 'This API reference as OpenAPI 3.1', tags: ['docs'] } },
    async (request) => {
      if (cached && cached.until > Date.now()) return cached.doc;
      const names = Object.keys(opts.pools) as Upstream[];
      const answers = await Promise.all(names.map((name) => fetchDocument(request, name)));
      const missing = names.filter((_, i) => !answers[i]);
      const parts = answers.filter((a): a is OpenApiDocument => a !== null);
      const doc = mergeDocuments([app.swagger() as unknown as OpenApiDocument, ...parts], missing);
      cached = missing.length === 0 ? { doc, until: Date.now() + CACHE_MS } : null;
      return doc;
    },
  );

  const referenceApp = onDemandApp(app, async () => {
    const { default: scalar } = await import('@scalar/fastify-api-reference');
    const inner = Fastify({ logger: false });
    await inner.register(scalar, {
      routePrefix: DOCS_PATH,
      configuration: {
        url: OPENAPI_PATH,
        withDefaultFonts: false,
        telemetry: false,
        pageTitle: 'atoll API',
      },
    });
    await inner.ready();
    return inner;
  });
  // The page runs Scalar's script and its inline bootstrap, all from this gateway.
  const serveReference = async (request: FastifyRequest, reply: FastifyReply) => {
    const inner = await referenceApp();
    const answer = await inner.inject({ method: 'GET', url: request.url });
    if (answer.statusCode === 404) return reply.callNotFound();
    for (const name of ['content-type', 'location', 'cache-control', 'etag', 'last-modified'])
      if (answer.headers[name] !== undefined) reply.header(name, answer.headers[name]);
    return reply.code(answer.statusCode).header('content-security-policy', DOCS_CSP).send(answer.rawPayload);
  };
  app.get(DOCS_PATH, { schema: { hide: true } }, serveReference);
  app.get(`${DOCS_PATH}/*`, { schema: { hide: true } }, serveReference);
};

export default docs;
