/**
 * Text the services cannot take is refused by the base plugin before any route runs: `%00` in a path or
 * a query, or a query that is not valid percent-encoding, is a 400 on `url`; U+0000 in a JSON string or
 * key is a 422 naming the field. What only looks like a NUL (an escaped backslash before `u0000`)
 * passes, and lone surrogates arrive as U+FFFD, the text PostgreSQL would store.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base, fastifyOptions } from '../src/index.ts';
import { nulField } from '../src/unsafe-text.ts';

const URL_REFUSED = { errors: { url: ['must not contain NUL characters (%00)'] }, code: 'BAD_REQUEST' };
const refused = (field: string) => ({
  errors: { [field]: ['must not contain NUL characters'] },
  code: 'VALIDATION_FAILED',
});

describe('NUL characters never reach a route', () => {
  let app: FastifyInstance;
  const reached: string[] = [];
  beforeAll(async () => {
    app = Fastify(
      fastifyOptions({ service: 'test', logLevel: 'silent', requestIds: 'internal', bodyLimit: 512 * 1024 }),
    );
    await app.register(base, { service: 'test' });
    app.get('/things/:slug', async (request) => {
      reached.push(request.url);
      return { params: request.params, query: request.query };
    });
    app.post('/things', async (request) => {
      reached.push(request.url);
      return { body: request.body ?? null };
    });
    await app.ready();
  });
  afterAll(() => app.close());

  it('%00 in a path segment or a query value (also in an unknown route), a malformed query: 400 on url', async () => {
    reached.length = 0;
    for (const url of [
      '/things/a%00b',
      '/things/%00',
      '/things/a?tag=%00',
      '/things/a?tag=x%00y&limit=1',
      '/things/a?%00=x',
      '/nowhere/%00',
    ]) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json(), url).toEqual(URL_REFUSED);
    }
    expect(reached).toEqual([]);
    // A query that is not valid percent-encoding, like a path: 400 on url.
    for (const url of [
      '/things/a?tag=%FF',
      '/things/a?tag=%ED%A0%80',
      '/things/a?q=100%',
      '/things/a?%ZZ=1',
    ]) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(400);
      expect(res.json(), url).toEqual({
        errors: { url: ['is not valid (malformed percent-encoding)'] },
        code: 'BAD_REQUEST',
      });
    }
    expect(reached).toEqual([]);
    // `%2500` is the text "%00", not a NUL; well-formed escapes pass.
    const euro = await app.inject({ method: 'GET', url: '/things/a?tag=%E2%82%AC%20x' });
    expect(euro.json().query).toEqual({ tag: '\u20ac x' });
    const text = await app.inject({ method: 'GET', url: '/things/a?tag=%2500' });
    expect(text.statusCode).toBe(200);
    expect(text.json().query).toEqual({ tag: '%00' });
  });

  it('U+0000 in a JSON string: 422 naming the field, wherever it sits', async () => {
    reached.length = 0;
    const cases: Array<[string, string]> = [
      ['{"article":{"title":"a\\u0000b","body":"ok"}}', 'title'],
      ['{"article":{"tagList":["ok","\\u0000"]}}', 'tagList'],
      ['{"comment":{"body":"\\u0000"}}', 'body'],
      ['{"user":{"bio":"x\\u0000","email":"a@b.c"}}', 'bio'],
      ['{"user":{"email":"a\\u0000@b.c"}}', 'email'],
      ['{"user":{"username":"\\u0000ada"}}', 'username'],
      ['{"user":{"password":"pass\\u0000word"}}', 'password'],
      ['"\\u0000"', 'body'],
      ['["\\u0000"]', 'body'],
      ['{"a\\u0000b":1}', 'ab'],
      ['{"deep":[[[{"x":[["\\u0000"]]}]]]}', 'x'],
    ];
    for (const [payload, field] of cases) {
      const res = await app.inject({
        method: 'POST',
        url: '/things',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, payload).toBe(422);
      expect(res.json(), payload).toEqual(refused(field));
    }
    expect(reached).toEqual([]);
  });

  it('a body nested as deep as the limit allows is walked without overflowing the stack', async () => {
    const depth = 100_000;
    const payload = `${'['.repeat(depth)}"\\u0000"${']'.repeat(depth)}`;
    const res = await app.inject({
      method: 'POST',
      url: '/things',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toEqual(refused('body'));
  });

  it('an escaped backslash before u0000 is text, and lone surrogates arrive as U+FFFD: 200', async () => {
    for (const [payload, expected] of [
      ['{"body":"C:\\\\u0000"}', { body: 'C:\\u0000' }],
      ['{"body":"\\\\U0000 and \\\\u0000"}', { body: '\\U0000 and \\u0000' }],
      ['{"body":"\\ud800 \\udfff \\ud83d\\ude00"}', { body: '\ufffd \ufffd \u{1f600}' }],
      ['{"\\udbff":["\\udc00",{"x":"\\ud800"}]}', { '\ufffd': ['\ufffd', { x: '\ufffd' }] }],
      ['"\\ud800"', '\ufffd'],
      ['{"body":"\\u0001\\u001f\\u007f"}', { body: '\u0001\u001f\u007f' }],
    ] as const) {
      const res = await app.inject({
        method: 'POST',
        url: '/things',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, payload).toBe(200);
      expect(res.json().body, payload).toEqual(expected);
    }
  });

  it('nulField names the key of the first string holding U+0000', () => {
    expect(nulField({ a: 'x', b: { c: ['y', 'z\0'] } })).toBe('c');
    expect(nulField({ a: 'x', b: 1, c: null, d: true })).toBeUndefined();
    expect(nulField('\0')).toBe('body');
    expect(nulField({ '\0': 1 })).toBe('body');
  });
});
