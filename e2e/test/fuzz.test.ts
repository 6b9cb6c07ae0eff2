/**
 * Bad input through the gateway of the whole stack, generated: every operation of the public RealWorld
 * contract (api/openapi.yml of https://github.com/realworld-apps/realworld) and every route of atoll's
 * own document (`/api/openapi.json`) gets bounded bodies, queries and path values from fast-check with a
 * fixed seed — control characters, NUL, lone surrogates, huge numbers, deep nesting, wrong types,
 * duplicated JSON keys, long strings within the body limit, odd Content-Types — sent as an anonymous
 * client and as a signed-in one, against a stack that holds real rows (two users, an article, a
 * comment), so that some requests hit them. Where contract.ts does not find the contract, atoll's own
 * document alone is used (it has the contract's routes too, with atoll's schemas rather than the
 * contract's), and the test's title and output say so.
 *
 * It fails on any 5xx, and on any row changed by a refused request: the rows of every table of the auth,
 * content and notifier schemas (count and md5, db-state.ts) are read before and after each batch. A batch
 * of reads, or of writes that were all refused (4xx), must leave them exactly as they were; the refused
 * writes of a batch in which some write succeeded are sent again one at a time, each checked alone.
 */
import type { Stack } from '@atoll/testkit';
import fc from 'fast-check';
import pg from 'pg';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { MISSING, readContract } from './contract.ts';
import { changedTables, type DbState, dbState, settledState } from './db-state.ts';
import { startTestStack } from './helpers.ts';

const SEED = 20_261_202;
/** Generated requests per operation and client (anonymous, signed in). */
const RUNS = 70;
const BATCH = 32;
const CONCURRENCY = 8;

type Schema = Record<string, any>;
interface Operation {
  method: string;
  /** With `{name}` for path parameters, `/api/...`. */
  path: string;
  query: string[];
  body: Schema | undefined;
  /** The document the body schema's `$ref`s point into. */
  doc: Schema;
}

interface FuzzRequest {
  op: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | undefined;
  signedIn: boolean;
}

interface Sent extends FuzzRequest {
  status: number;
  answer: string;
}

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** The operations of an OpenAPI document: method, path, query parameter names, JSON body schema. */
function operationsOf(doc: Schema, prefix: string): Operation[] {
  const deref = (node: any): any => {
    if (!node?.$ref) return node;
    const path = String(node.$ref).replace(/^#\//, '').split('/');
    return deref(path.reduce((at: any, part) => at?.[part.replaceAll('~1', '/')], doc));
  };
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<any>(doc.paths ?? {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const params = [...(item.parameters ?? []), ...(op.parameters ?? [])].map(deref);
      out.push({
        method: method.toUpperCase(),
        path: `${prefix}${path}`,
        query: params.filter((p) => p?.in === 'query').map((p) => String(p.name)),
        body: deref(op.requestBody)?.content?.['application/json']?.schema,
        doc,
      });
    }
  }
  return out;
}

/**
 * Strings that break things: control characters, NUL, lone surrogates, escapes, and (`long`, for bodies)
 * long ones within the body limit.
 */
function weirdString(known: string[], long = false): fc.Arbitrary<string> {
  const longOnes = fc.integer({ min: 1_000, max: 110_000 }).map((n) => 'y'.repeat(n));
  return fc.oneof(
    { weight: 4, arbitrary: fc.string({ unit: 'binary', maxLength: 24 }) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 16 }) },
    {
      weight: 2,
      arbitrary: fc
        .array(fc.integer({ min: 0, max: 0x1f }), { minLength: 1, maxLength: 6 })
        .map((codes) => String.fromCharCode(...codes, 0x7f)),
    },
    {
      weight: 4,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        '\u0000',
        'a\u0000b',
        '\ud800',
        'x\udfff',
        '\ud83d',
        '\u202e\ufeff\u200b',
        '%00',
        '%',
        '../../etc/passwd',
        "' OR 1=1 --",
        '__proto__',
        'constructor',
        '<script>alert(1)</script>',
        '@ada @bob',
        'a@b',
        'x'.repeat(300),
        'ü'.repeat(200),
        ...known,
      ),
    },
    ...(long ? [{ weight: 1, arbitrary: longOnes }] : []),
  );
}

const hugeNumber = fc.constantFrom(
  2 ** 53,
  -(2 ** 53) - 2,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  2 ** 31,
  -1,
  0,
  0.5,
);

/** Any JSON value: wrong types, nesting a few levels deep. */
function wild(known: string[]): fc.Arbitrary<unknown> {
  return fc.oneof(
    weirdString(known, true),
    hugeNumber,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.jsonValue({ maxDepth: 3 }),
    fc.array(weirdString(known), { maxLength: 4 }),
  );
}

/** A value shaped like `schema` (objects keep their property names), with any leaf possibly wild. */
function shaped(schema: Schema | undefined, doc: Schema, known: string[], depth = 0): fc.Arbitrary<unknown> {
  let s = schema;
  while (s?.$ref) {
    const path = String(s.$ref).replace(/^#\//, '').split('/');
    s = path.reduce((at: any, part) => at?.[part.replaceAll('~1', '/')], doc);
  }
  const any = wild(known);
  if (!s || depth > 4) return any;
  const alternatives = [...(s.allOf ?? []), ...(s.anyOf ?? []), ...(s.oneOf ?? [])] as Schema[];
  if (alternatives.length > 0) {
    return fc.oneof(
      ...alternatives.map((a) => shaped({ ...s, allOf: [], anyOf: [], oneOf: [], ...a }, doc, known, depth)),
    );
  }
  const type = Array.isArray(s.type) ? s.type[0] : s.type;
  if (type === 'object' || s.properties) {
    const model: Record<string, fc.Arbitrary<unknown>> = {};
    for (const [name, prop] of Object.entries<Schema>(s.properties ?? {})) {
      model[name] = shaped(prop, doc, known, depth + 1);
    }
    const required = ((s.required ?? []) as string[]).filter((k) => k in model);
    return fc.oneof(
      { weight: 4, arbitrary: fc.record(model, { requiredKeys: required }) },
      { weight: 2, arbitrary: fc.record(model, { requiredKeys: [] }) },
      { weight: 1, arbitrary: any },
    );
  }
  let leaf: fc.Arbitrary<unknown> = any;
  if (type === 'array') leaf = fc.array(shaped(s.items, doc, known, depth + 1), { maxLength: 25 });
  else if (s.format === 'email') leaf = fc.oneof(fc.emailAddress(), weirdString(known, true));
  else if (type === 'string') leaf = weirdString(known, true);
  else if (type === 'integer' || type === 'number') leaf = fc.oneof(hugeNumber, fc.integer());
  else if (type === 'boolean') leaf = fc.boolean();
  return fc.oneof({ weight: 4, arbitrary: leaf }, { weight: 1, arbitrary: any });
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON text with the first key of every object written twice, the second time with `other`. */
function withDuplicateKeys(value: unknown, other: unknown): string {
  if (!isPlainObject(value) || Object.keys(value).length === 0) return JSON.stringify(value) ?? 'null';
  const entries = Object.entries(value).map(
    ([k, v]) => `${JSON.stringify(k)}:${withDuplicateKeys(v, other)}`,
  );
  const first = Object.keys(value)[0] as string;
  return `{${entries.join(',')},${JSON.stringify(first)}:${JSON.stringify(other) ?? 'null'}}`;
}

/** How a generated value goes on the wire: JSON, or text that only looks like it. */
function bodyText(value: unknown, known: string[]): fc.Arbitrary<string> {
  const json = JSON.stringify(value) ?? 'null';
  return fc.oneof(
    { weight: 10, arbitrary: fc.constant(json) },
    { weight: 2, arbitrary: wild(known).map((other) => withDuplicateKeys(value, other)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        json.replace(/\d+/, '1'.repeat(400)),
        json.replace(/\d+/, '1e999999'),
        json.replace(/"/, "'"),
        `\ufeff${json}`,
        `${json}garbage`,
        json.slice(0, Math.max(1, json.length >> 1)),
        `${json}\u0000`,
      ),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 50, max: 100_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 50, max: 20_000 }).map((n) => `${'{"user":'.repeat(n)}1${'}'.repeat(n)}`),
    },
  );
}

const CONTENT_TYPES = [
  'application/json',
  'application/json; charset=utf-8',
  'APPLICATION/JSON',
  'application/json; charset=utf-16le',
  'application/json; charset=latin1',
  'application/json, text/plain',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/xml',
  'application/merge-patch+json',
  'application/vnd.api+json',
  ';;;',
];

/** A path value as it goes in the URL: valid ids and names, weird text percent-encoded, raw escapes. */
function pathValue(name: string, valid: Record<string, string[]>, known: string[]): fc.Arbitrary<string> {
  const encoded = weirdString(known).map((s) => encodeURIComponent(s.toWellFormed()).slice(0, 1500));
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...(valid[name] ?? ['x'])) },
    { weight: 4, arbitrary: encoded },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        '%00',
        'a%00b',
        '%ZZ',
        '%ED%A0%80',
        '%FF',
        '%2F',
        '%2e%2e',
        '..',
        '-1',
        '0',
        '1e308',
        '99999999999999999999999',
        '9007199254740993',
        'NaN',
        '0x1f',
        '%20',
        'a'.repeat(1100),
      ),
    },
    { weight: 1, arbitrary: fc.integer().map(String) },
  );
}

/** A query string: the operation's own parameters and others, any values, some escapes left raw. */
function queryString(names: string[], known: string[]): fc.Arbitrary<string> {
  const name = fc.oneof(
    fc.constantFrom(...names, 'limit', 'offset', 'tag', '__proto__', 'limit[]', 'a[b]', ''),
    weirdString(known),
  );
  const value = fc.oneof(
    { weight: 4, arbitrary: weirdString(known).map((s) => encodeURIComponent(s.toWellFormed())) },
    { weight: 2, arbitrary: fc.oneof(hugeNumber, fc.integer()).map(String) },
    {
      weight: 1,
      arbitrary: fc.constantFrom('%00', '%FF', '%ED%A0%80', '%', '%ZZ', '1e999', '-0', '+1', '1%2C2'),
    },
  );
  return fc
    .array(
      fc.tuple(
        name.map((n) => encodeURIComponent(n.toWellFormed())),
        value,
      ),
      { maxLength: 5 },
    )
    .map((pairs) => (pairs.length === 0 ? '' : `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`));
}

function requestsOf(
  op: Operation,
  signedIn: boolean,
  valid: Record<string, string[]>,
  known: string[],
): fc.Arbitrary<Omit<FuzzRequest, 'headers'> & { contentType: string | undefined }> {
  const names = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1] as string);
  const params = fc.tuple(...names.map((n) => pathValue(n, valid, known)));
  const carriesBody = op.method !== 'GET';
  const body = carriesBody
    ? fc.option(
        shaped(op.body, op.doc, known).chain((v) => bodyText(v, known)),
        { freq: 6, nil: undefined },
      )
    : fc.constant(undefined);
  const contentType = fc.oneof(
    { weight: 6, arbitrary: fc.constant('application/json') },
    { weight: 2, arbitrary: fc.constantFrom(...CONTENT_TYPES) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
  return fc
    .record({ params, query: queryString(op.query, known), body, contentType })
    .map(({ params: values, query, body: text, contentType: type }) => {
      let i = 0;
      const path = op.path.replace(/\{(\w+)\}/g, () => values[i++] ?? 'x') + query;
      return {
        op: `${op.method} ${op.path}`,
        method: op.method,
        path,
        body: text,
        contentType: type,
        signedIn,
      };
    });
}

describe('generated bad input through the gateway (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let db: pg.Client;
  let pool: Pool;
  let state: () => Promise<DbState>;
  let api: ReturnType<typeof apiClient>;
  const users = { ada: '', bob: '' };
  let slug = '';
  let commentId = 0;
  let bobCredentials = { email: 'bob@example.com', password: 'correct horse' };

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('fuzz'));
    api = apiClient(stack.gatewayUrl);
    db = new pg.Client({ connectionString: stack.databaseUrl });
    await db.connect();
    state = dbState(db);
    pool = new Pool(stack.gatewayUrl, {
      connections: CONCURRENCY,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    for (const name of ['ada', 'bob'] as const) {
      const res = await api('POST', '/api/users', {
        body: { user: { username: name, email: `${name}@example.com`, password: 'correct horse' } },
      });
      expect(res.status).toBe(201);
      users[name] = res.body.user.token;
    }
    const article = await api('POST', '/api/articles', {
      token: users.ada,
      body: { article: { title: 'Fuzzed', description: 'd', body: 'b @bob', tagList: ['fuzz'] } },
    });
    expect(article.status).toBe(201);
    slug = article.body.article.slug;
    const comment = await api('POST', `/api/articles/${slug}/comments`, {
      token: users.bob,
      body: { comment: { body: 'first' } },
    });
    expect(comment.status).toBe(201);
    commentId = comment.body.comment.id;
  }, 120_000);
  afterAll(async () => {
    await pool?.close();
    await db?.end();
    await dispose?.();
  });

  /** Bob's token, signing him in again (or a new user) when a generated request ended his session. */
  async function signedInToken(): Promise<string> {
    if ((await api('GET', '/api/user', { token: users.bob })).status === 200) return users.bob;
    const login = await api('POST', '/api/users/login', { body: { user: bobCredentials } });
    if (login.status === 200) {
      users.bob = login.body.user.token;
      return users.bob;
    }
    // A generated update changed his email or password: a new signed-in user takes over.
    const n = Date.now();
    bobCredentials = { email: `fuzz${n}@example.com`, password: 'correct horse' };
    const created = await api('POST', '/api/users', {
      body: { user: { username: `fuzz${n}`, ...bobCredentials } },
    });
    expect(created.status).toBe(201);
    users.bob = created.body.user.token;
    return users.bob;
  }

  async function send(req: FuzzRequest): Promise<Sent> {
    const headers = { ...req.headers };
    if (req.signedIn) headers.authorization = `Token ${users.bob}`;
    try {
      const res = await pool.request({
        path: req.path,
        method: req.method as 'GET',
        headers,
        body: req.body,
      });
      let answer = '';
      if (String(res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        // A live stream never ends: drop it (undici then reports the abort on the body, expected here).
        res.body.on('error', () => {});
        res.body.destroy();
      } else answer = (await res.body.text()).slice(0, 300);
      return { ...req, status: res.statusCode, answer };
    } catch (err) {
      return { ...req, status: 0, answer: String(err) };
    }
  }

  async function sendAll(reqs: FuzzRequest[]): Promise<Sent[]> {
    const out: Sent[] = new Array(reqs.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = next++; i < reqs.length; i = next++) out[i] = await send(reqs[i] as FuzzRequest);
      }),
    );
    return out;
  }

  const title = 'answers no generated request with a 5xx, and a refused one changes no row';
  const contractLeftOut = "the RealWorld contract's own operations and body schemas left out";
  if (MISSING) console.warn(`"${title}": ${contractLeftOut}: ${MISSING}`);
  it(MISSING ? `${title} (${contractLeftOut}: ${MISSING})` : title, async () => {
    const started = Date.now();
    const contract = MISSING ? [] : operationsOf(readContract(), '/api');
    const published = await (await fetch(`${stack.gatewayUrl}/api/openapi.json`)).json();
    const own = operationsOf(published as Schema, '');
    const seen = new Set<string>();
    const operations = [...contract, ...own].filter((op) => {
      const key = `${op.method} ${op.path.replace(/\{\w+\}/g, '{}')}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    if (!MISSING) expect(contract.length).toBeGreaterThanOrEqual(19);
    expect(operations.length).toBeGreaterThan(contract.length);

    const valid: Record<string, string[]> = {
      slug: [slug],
      username: ['ada', 'bob'],
      id: [String(commentId)],
    };
    const known = [slug, 'ada', 'bob', 'ada@example.com', 'correct horse', String(commentId), 'fuzz'];
    const requests: FuzzRequest[] = [];
    operations.forEach((op, index) => {
      for (const signedIn of [false, true]) {
        const generated = fc.sample(requestsOf(op, signedIn, valid, known), {
          seed: SEED + index * 2 + Number(signedIn),
          numRuns: RUNS,
        });
        for (const { contentType, ...req } of generated) {
          const headers: Record<string, string> = {};
          if (req.body !== undefined && contentType !== undefined) headers['content-type'] = contentType;
          requests.push({ ...req, headers });
        }
      }
    });

    const histogram: Record<string, number> = {};
    const failures: string[] = [];
    const serverErrors: Sent[] = [];
    const describe = (r: Sent) =>
      `${r.signedIn ? 'signed in' : 'anonymous'} ${r.method} ${r.path.slice(0, 200)} ` +
      `[${r.headers['content-type'] ?? 'no type'}] ${JSON.stringify(r.body?.slice(0, 200))} -> ${r.status} ${r.answer.slice(0, 200)}`;
    const count = (sent: Sent[]) => {
      for (const r of sent) {
        const cls = r.status === 0 ? 'no answer' : `${Math.floor(r.status / 100)}xx`;
        histogram[cls] = (histogram[cls] ?? 0) + 1;
        if (r.status >= 500 || r.status === 0) serverErrors.push(r);
      }
    };

    const reads = requests.filter((r) => r.method === 'GET');
    const writes = requests.filter((r) => r.method !== 'GET');
    let checkedBatches = 0;
    let replayed = 0;
    /**
     * Background work of earlier writes (the outbox relay, the notification fan-out, its emails) can land
     * in the middle of any check. So a change seen after refused requests counts only if it happens again:
     * once everything has been quiet for a while, the same requests are sent again and must change rows
     * again. A refused request that really writes does so every time.
     */
    const changesAgain = async (refused: Sent[]): Promise<string[]> => {
      const quiet = await settledState(state, { quietMs: 2500, timeoutMs: 30_000 });
      const again = await sendAll(refused);
      for (const r of again) if (r.status >= 500 || r.status === 0) serverErrors.push(r);
      if (again.some((r) => r.status < 400 || r.status >= 500)) return [];
      return changedTables(quiet, await state());
    };
    let before = await settledState(state);
    for (let at = 0; at < reads.length; at += BATCH) {
      const sent = await sendAll(reads.slice(at, at + BATCH));
      count(sent);
      const changed = changedTables(before, await state());
      checkedBatches++;
      if (changed.length > 0) {
        const confirmed = await changesAgain(sent);
        if (confirmed.length > 0)
          failures.push(`reads changed rows: ${confirmed.join('; ')}\n  ${sent.map(describe).join('\n  ')}`);
        before = await settledState(state);
      }
    }
    for (let at = 0; at < writes.length; at += BATCH) {
      const sent = await sendAll(writes.slice(at, at + BATCH));
      count(sent);
      const refused = sent.filter((r) => r.status >= 400 && r.status < 500);
      if (refused.length === sent.length) {
        const changed = changedTables(before, await state());
        checkedBatches++;
        if (changed.length > 0) {
          const confirmed = await changesAgain(sent);
          if (confirmed.length > 0) {
            failures.push(
              `refused writes changed rows: ${confirmed.join('; ')}\n  ${sent.map(describe).join('\n  ')}`,
            );
          }
          before = await settledState(state);
        }
        continue;
      }
      // Some writes succeeded: let their consequences settle, then check each refused one alone.
      await signedInToken();
      before = await settledState(state);
      for (const req of refused) {
        const again = await send(req);
        replayed++;
        if (again.status >= 500 || again.status === 0) serverErrors.push(again);
        if (again.status < 400 || again.status >= 500) {
          await signedInToken();
          before = await settledState(state);
          continue;
        }
        const changed = changedTables(before, await state());
        if (changed.length > 0) {
          const confirmed = await changesAgain([again]);
          if (confirmed.length > 0)
            failures.push(`refused write changed rows: ${confirmed.join('; ')}\n  ${describe(again)}`);
          before = await settledState(state);
        }
      }
    }

    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(
      `fuzz: ${requests.length} generated requests over ${operations.length} operations ` +
        `(${contract.length} RealWorld, seed ${SEED}) in ${seconds} s; by status: ${JSON.stringify(histogram)}; ` +
        `${checkedBatches} batches checked against the database, ${replayed} refused writes checked alone`,
    );
    const logs = Object.entries(stack.services).flatMap(([name, svc]) =>
      svc.logs
        .filter((l: any) => (l.level ?? 0) >= 50)
        .map((l) => `${name}: ${JSON.stringify(l).slice(0, 600)}`),
    );
    if (serverErrors.length > 0 || failures.length > 0) console.log(logs.slice(0, 30).join('\n'));
    expect(requests.length).toBeGreaterThanOrEqual(5_000);
    expect(serverErrors.map(describe)).toEqual([]);
    expect(failures).toEqual([]);
  }, 600_000);
});
