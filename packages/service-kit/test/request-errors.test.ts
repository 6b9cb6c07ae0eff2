/**
 * What a service answers before its routes run, with the options and base plugin every service uses:
 * an empty body is no body whatever the Content-Type says, and every error Fastify or Node's HTTP parser
 * produces (bad JSON, unknown route or method, bad URL encoding, long path parameter or URL, headers too
 * large, unsupported media type, body too large) comes in the RealWorld shape with a catalog code.
 * `inject` for what Fastify decides; a listening server and raw sockets for what Node's parser decides.
 */

import { once } from 'node:events';
import { connect } from 'node:net';
import { type RawResponse, rawRequest } from '@atoll/testkit';
import fc from 'fast-check';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base, fastifyOptions, MAX_URL_LENGTH } from '../src/index.ts';

const REALWORLD_SHAPE = {
  errors: expect.any(Object),
  code: expect.stringMatching(/^[A-Z_]+$/),
};

/** Asserts the RealWorld error shape: `{"errors": {"<field>": ["<message>"]}, "code": "<CODE>"}`. */
function expectRealWorldError(body: unknown, code: string): void {
  expect(body).toMatchObject({ ...REALWORLD_SHAPE, code });
  const { errors } = body as { errors: Record<string, unknown> };
  expect(Object.keys(errors).length).toBeGreaterThan(0);
  for (const messages of Object.values(errors)) {
    expect(Array.isArray(messages) && messages.every((m) => typeof m === 'string')).toBe(true);
  }
}

async function buildService(): Promise<FastifyInstance> {
  const app = Fastify(
    fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal', bodyLimit: 1024 }),
  );
  await app.register(base, { service: 'test' });
  app.post('/things/:slug/like', async (request) => ({ liked: true, body: request.body ?? null }));
  app.delete('/things/:slug', async (_request, reply) => reply.code(204).send());
  app.get('/things/:slug', async (request) => ({ slug: (request.params as { slug: string }).slug }));
  app.post(
    '/things',
    {
      schema: {
        body: {
          type: 'object',
          required: ['thing'],
          properties: { thing: { type: 'object', properties: { name: { type: 'string' } } } },
        },
      },
    },
    async (request, reply) => reply.code(201).send(request.body),
  );
  await app.ready();
  return app;
}

describe('an empty body is no body (inject)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildService();
  });
  afterAll(() => app.close());

  it('Content-Type: application/json with Content-Length: 0 on POST and DELETE routes that take no body', async () => {
    const json = { 'content-type': 'application/json', 'content-length': '0' };
    const like = await app.inject({ method: 'POST', url: '/things/a/like', headers: json });
    expect(like.statusCode).toBe(200);
    expect(like.json()).toEqual({ liked: true, body: null });
    const del = await app.inject({ method: 'DELETE', url: '/things/a', headers: json });
    expect(del.statusCode).toBe(204);
  });

  it('Content-Type: application/json and no Content-Length at all', async () => {
    const headers = { 'content-type': 'application/json' };
    expect((await app.inject({ method: 'POST', url: '/things/a/like', headers })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: '/things/a', headers })).statusCode).toBe(204);
  });

  it('a body of only whitespace is no body either', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/things/a/like',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: ' \r\n\t ',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ liked: true, body: null });
  });

  it('whatever the Content-Type: an empty body with a type no parser knows is not a 415', async () => {
    const res = await app.inject({
      method: 'DELETE',
      url: '/things/a',
      headers: { 'content-type': 'application/xml', 'content-length': '0' },
    });
    expect(res.statusCode).toBe(204);
    // A body of that type is still refused.
    const xml = await app.inject({
      method: 'POST',
      url: '/things/a/like',
      headers: { 'content-type': 'application/xml' },
      payload: '<like/>',
    });
    expect(xml.statusCode).toBe(415);
    expect(xml.json()).toEqual({
      errors: { body: ['must be application/json'] },
      code: 'UNSUPPORTED_MEDIA_TYPE',
    });
  });

  it('a route that needs a body answers its 422, not a 400', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'application/json', 'content-length': '0' },
    });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toEqual({ errors: { body: ["can't be blank"] }, code: 'VALIDATION_FAILED' });
    const ok = await app.inject({ method: 'POST', url: '/things', payload: { thing: { name: 'x' } } });
    expect(ok.statusCode).toBe(201);
    expect(ok.json()).toEqual({ thing: { name: 'x' } });
  });

  it('a non-empty body that is not JSON stays a 400, prototype poisoning included', async () => {
    for (const payload of ['{', 'not json', '{"thing": }', '{"__proto__": {"admin": true}}']) {
      const res = await app.inject({
        method: 'POST',
        url: '/things',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, payload).toBe(400);
      expect(res.json()).toEqual({ errors: { body: ['is not valid JSON'] }, code: 'MALFORMED_BODY' });
    }
  });
});

describe('errors before any route runs, in the RealWorld shape (inject)', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildService();
  });
  afterAll(() => app.close());

  it('unknown route, and a known path with a method it does not serve: 404', async () => {
    for (const [method, url] of [
      ['GET', '/nowhere'],
      ['PATCH', '/things/a'],
      ['PUT', '/things/a/like'],
    ] as const) {
      const res = await app.inject({ method, url });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(res.json()).toEqual({ errors: { route: ['not found'] }, code: 'NOT_FOUND' });
    }
  });

  it('a path that is not valid percent-encoding: 400 with the request id', async () => {
    const res = await app.inject({ url: '/things/%zz' });
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(res.json()).toEqual({
      errors: { url: ['is not valid (malformed percent-encoding)'] },
      code: 'BAD_REQUEST',
    });
  });

  it('long path parameters are matched up to 1000 characters, longer is a 414', async () => {
    const username = 'ü'.repeat(40); // 240 characters once encoded
    const named = await app.inject({ url: `/things/${encodeURIComponent(username)}` });
    expect(named.statusCode).toBe(200);
    expect(named.json()).toEqual({ slug: username });
    expect((await app.inject({ url: `/things/${'s'.repeat(1000)}` })).statusCode).toBe(200);
    const long = await app.inject({ url: `/things/${'s'.repeat(1001)}` });
    expect(long.statusCode).toBe(414);
    expect(long.headers['x-request-id']).toBeTruthy();
    expect(long.json()).toEqual({
      errors: { url: ['has a path segment that is too long'] },
      code: 'URI_TOO_LONG',
    });
  });

  it('a URL over MAX_URL_LENGTH: 414', async () => {
    const url = `/things/a?q=${'q'.repeat(MAX_URL_LENGTH)}`;
    const res = await app.inject({ url });
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({ errors: { url: ['is too long'] }, code: 'URI_TOO_LONG' });
    const unknown = await app.inject({ url: `/nowhere?q=${'q'.repeat(MAX_URL_LENGTH)}` });
    expect(unknown.statusCode).toBe(414);
  });

  it('a body over the limit: 413', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/things',
      payload: { thing: { name: 'x'.repeat(2048) } },
    });
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ errors: { body: ['is too large'] }, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('a Content-Type that cannot be parsed: 415', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'application/' },
      payload: '{}',
    });
    expect(res.statusCode).toBe(415);
    expectRealWorldError(res.json(), 'UNSUPPORTED_MEDIA_TYPE');
  });
});

describe("what Node's HTTP parser refuses, and bodies on the wire (listening server, raw sockets)", () => {
  let app: FastifyInstance;
  let port: number;
  beforeAll(async () => {
    app = await buildService();
    await app.listen({ host: '127.0.0.1', port: 0 });
    port = (app.server.address() as { port: number }).port;
  });
  afterAll(() => app.close());
  /** Reads until the server closes the connection, to see that it does. */
  const raw = (request: string) => rawRequest(`http://127.0.0.1:${port}`, request, { untilClose: true });

  /** A closing response with a JSON body of the length it says, in the RealWorld shape. */
  const expectClosingJsonError = (res: RawResponse, status: number, code: string) => {
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(Number(res.headers['content-length'])).toBe(res.bodyBytes);
    expect(res.headers.connection).toBe('close');
    expect(res.closed).toBe(true);
    expectRealWorldError(JSON.parse(res.body), code);
  };

  it('request header fields over 16 KB: 431 with a JSON body, then the connection closes', async () => {
    const res = await raw(`GET /things/a HTTP/1.1\r\nHost: x\r\nX-Big: ${'h'.repeat(20 * 1024)}\r\n\r\n`);
    expectClosingJsonError(res, 431, 'HEADERS_TOO_LARGE');
    // The server still serves the next connection.
    const next = await raw('GET /things/a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(next.status).toBe(200);
  });

  it('a URL over 16 KB is refused by the same parser limit: 431', async () => {
    const res = await raw(`GET /things/${'u'.repeat(20 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expectClosingJsonError(res, 431, 'HEADERS_TOO_LARGE');
  });

  it('a URL over MAX_URL_LENGTH but within the parser limit: 414', async () => {
    const res = await raw(
      `GET /things/a?q=${'q'.repeat(MAX_URL_LENGTH)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(res.status).toBe(414);
    expect(JSON.parse(res.body)).toEqual({ errors: { url: ['is too long'] }, code: 'URI_TOO_LONG' });
  });

  it('a method Node does not know, and a broken request line: 400', async () => {
    const method = await raw('FROB /things/a HTTP/1.1\r\nHost: x\r\n\r\n');
    expectClosingJsonError(method, 400, 'BAD_REQUEST');
    expect(JSON.parse(method.body)).toEqual({
      errors: { method: ['is not an HTTP method'] },
      code: 'BAD_REQUEST',
    });
    const garbage = await raw('GET /things/a HTTP/9\r\n\r\n');
    expectClosingJsonError(garbage, 400, 'BAD_REQUEST');
  });

  it('HTTP/1.1 without Host: 400 in the RealWorld shape; HTTP/1.0 needs none', async () => {
    const res = await raw('GET /things/a HTTP/1.1\r\n\r\n');
    expectClosingJsonError(res, 400, 'BAD_REQUEST');
    expect(JSON.parse(res.body).errors).toEqual({ host: ["can't be blank"] });
    const old = await raw('GET /things/a HTTP/1.0\r\n\r\n');
    expect(old.status).toBe(200);
  });

  it('CONNECT: 405 in the RealWorld shape, then the connection closes', async () => {
    const res = await raw('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n');
    expectClosingJsonError(res, 405, 'METHOD_NOT_ALLOWED');
    expect(JSON.parse(res.body).errors).toEqual({ method: ['CONNECT is not served here'] });
  });

  it('an Expect other than 100-continue: 417 in the RealWorld shape; 100-continue is served', async () => {
    const res = await raw(
      'POST /things/a/like HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nContent-Length: 2\r\n\r\n',
    );
    expectClosingJsonError(res, 417, 'EXPECTATION_FAILED');
    const ok = await raw(
      'POST /things/a/like HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Type: application/json\r\n' +
        'Content-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expect(ok.status).toBe(200);
  });

  it('a chunked body that turns out empty, and a POST with neither length nor chunks, are no body', async () => {
    const chunked = await raw(
      'POST /things/a/like HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n' +
        'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n',
    );
    expect(chunked.status).toBe(200);
    expect(JSON.parse(chunked.body)).toEqual({ liked: true, body: null });
    const bare = await raw(
      'POST /things/a/like HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n',
    );
    expect(bare.status).toBe(200);
  });
});

describe('validation errors name the field the client sent (inject)', () => {
  let app: FastifyInstance;
  const FIELDS = ['item', 'tagList', 'bio', 'count', 'nested'];
  beforeAll(async () => {
    app = Fastify(fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal' }));
    await app.register(base, { service: 'test' });
    app.post(
      '/items',
      {
        schema: {
          body: {
            type: 'object',
            required: ['item'],
            properties: {
              item: {
                type: 'object',
                properties: {
                  tagList: { type: 'array', items: { type: 'string', maxLength: 8 } },
                  bio: { anyOf: [{ type: 'string', maxLength: 5 }, { type: 'null' }] },
                  count: { type: 'integer' },
                  nested: { type: 'object', properties: { inner: { type: 'string' } } },
                },
              },
            },
          },
        },
      },
      async (request, reply) => reply.code(201).send(request.body),
    );
    await app.ready();
  });
  afterAll(() => app.close());

  const post = async (item: unknown) => {
    const res = await app.inject({ method: 'POST', url: '/items', payload: { item } });
    return { status: res.statusCode, body: res.json() as { errors?: Record<string, string[]> } };
  };

  it('an array item is its array, a nullable field says what it may be, and articles are right', async () => {
    expect((await post({ tagList: [1, 'much too long'] })).body.errors).toEqual({
      tagList: ['must be a string', 'is too long (maximum is 8 characters)'],
    });
    expect((await post({ bio: 123 })).body.errors).toEqual({ bio: ['must be a string or null'] });
    expect((await post({ bio: 'too long' })).body.errors).toEqual({
      bio: ['is too long (maximum is 5 characters)'],
    });
    expect((await post('x')).body.errors).toEqual({ item: ['must be an object'] });
    expect((await post({ tagList: 'x' })).body.errors).toEqual({ tagList: ['must be an array'] });
    expect((await post({ count: 1.5 })).body.errors).toEqual({ count: ['must be an integer'] });
    expect((await post({ bio: null, tagList: ['ok'] })).status).toBe(201);
  });

  it('whatever the values: 201, or 422 whose every key is a field of the schema (fast-check)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record(
          {
            tagList: fc.oneof(fc.array(fc.jsonValue(), { maxLength: 4 }), fc.jsonValue()),
            bio: fc.jsonValue(),
            count: fc.jsonValue(),
            nested: fc.oneof(fc.record({ inner: fc.jsonValue() }), fc.jsonValue()),
          },
          { requiredKeys: [] },
        ),
        async (item) => {
          const { status, body } = await post(item);
          // A `__proto__` or `constructor` key anywhere is refused by the JSON parser first (400).
          if (/"(?:__proto__|constructor)":/.test(JSON.stringify(item))) {
            expect(status).toBe(400);
            return;
          }
          expect([201, 422]).toContain(status);
          if (status === 201) return;
          for (const [field, messages] of Object.entries(body.errors ?? {})) {
            expect([...FIELDS, 'inner']).toContain(field);
            for (const message of messages) expect(message).not.toMatch(/schema|anyOf|\ba [aeiou]/);
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('a client that leaves while its body is arriving (listening server, raw socket)', () => {
  it('is logged as what it is, not as a database or Redis that is down', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const stream = { write: (line: string) => void lines.push(JSON.parse(line)) };
    const options = fastifyOptions({ service: 'test', logLevel: 'info', requestIds: 'internal' });
    const app = Fastify({ ...options, logger: { ...(options.logger as object), stream } });
    await app.register(base, { service: 'test' });
    app.post('/things', async (request) => request.body);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'POST /things HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":1',
    );
    await new Promise((r) => setTimeout(r, 100));
    socket.destroy();
    const logged = async () => lines.some((l) => l.msg.startsWith('client closed the connection'));
    for (let i = 0; i < 100 && !(await logged()); i += 1) await new Promise((r) => setTimeout(r, 20));
    await app.close();
    expect(await logged()).toBe(true);
    expect(lines.filter((l) => /unavailable/.test(l.msg))).toEqual([]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
  });
});
