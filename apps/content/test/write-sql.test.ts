/**
 * The bench's same-SQL reference (bench/refs/same-sql-writes.ts) runs the statements listed in
 * bench/refs/write-sql.ts; this test captures what content itself sends to PostgreSQL for each of those
 * writes (every pg client's queries, through pg's Client) and checks that the lists still match, so that
 * the reference cannot drift from the code it stands for.
 */
import { gatewayHeaders } from '@atoll/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIND_ARTICLE, WRITE_TRANSACTIONS } from '../../../bench/refs/write-sql.ts';
import { type ContentFixture, startContentApp } from './content-fixture.ts';

const AUTHOR = '00000000-0000-0000-0000-00000000000a';
const identity = { userId: AUTHOR, username: 'ada', sessionId: 'x'.repeat(43), roles: ['user'] };

/** Statements as pg received them, with the client that sent each (a transaction stays on one client). */
interface Sent {
  client: object;
  sql: string;
}

/** The outbox relay's statements: it reads and marks pending rows, after every commit, on its own schedule. */
const relays = (sql: string) => /^(select|update)\b/.test(sql) && /\bjob_outbox\b/.test(sql);
/** A statement outside a transaction that writes (a read builds the response, it is not the write). */
const writes = (sql: string) => /^(insert|update|delete|with)\b/.test(sql);

/**
 * The request's own statements among `sent`, in units: each client's statements from a `begin` to its
 * `commit`, and each statement sent outside a transaction. The outbox relay's work is not the request's.
 */
function unitsOf(sent: Sent[]): string[][] {
  const open = new Map<object, string[]>();
  const done: string[][] = [];
  for (const { client, sql } of sent) {
    if (sql === 'begin') open.set(client, []);
    const current = open.get(client);
    if (!current) {
      // The end of a transaction begun before the capture (the relay's, still running) is not a unit.
      if (!relays(sql) && sql !== 'commit' && sql !== 'rollback') done.push([sql]);
      continue;
    }
    current.push(sql);
    if (sql === 'commit') {
      open.delete(client);
      if (!current.some(relays)) done.push(current);
    }
  }
  return done;
}

/** The writes among `sent`: its transactions, and the writing statements sent alone (atomic by themselves). */
const writesOf = (sent: Sent[]) => unitsOf(sent).filter((unit) => unit.length > 1 || writes(unit[0] ?? ''));

describe('the same-SQL reference of the bench', () => {
  let content: ContentFixture;
  const sent: Sent[] = [];
  const query = pg.Client.prototype.query;

  beforeAll(async () => {
    content = await startContentApp('content-write-sql', [{ user_id: AUTHOR, username: 'ada' }]);
    // Every statement any pg client of this process sends, as text with whitespace collapsed.
    pg.Client.prototype.query = function (this: object, ...args: unknown[]) {
      const text = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: string })?.text;
      if (text) sent.push({ client: this, sql: text.replace(/\s+/g, ' ').trim() });
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
  });
  afterAll(async () => {
    pg.Client.prototype.query = query;
    await content?.close();
  });

  /**
   * Until pg has received nothing for 150 ms: what the last write set off after its answer (the outbox
   * relay, rankings, relation loads) is over before the next write is captured.
   */
  const quiet = async () => {
    for (let seen = -1; seen !== sent.length; ) {
      seen = sent.length;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
  };

  /** Sends one write as the gateway would, and returns the statements pg received while it ran. */
  const write = async (method: 'POST' | 'DELETE', url: string, payload?: object) => {
    await quiet();
    sent.length = 0;
    const res = await content.app.inject({
      method,
      url,
      ...(payload ? { payload } : {}),
      headers: gatewayHeaders(content.keys, 'content', { method, url, identity }),
    });
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return { body: res.json(), sent: [...sent] };
  };

  it('runs, for each write, exactly the statements the reference runs', async () => {
    const created = await write('POST', '/api/articles', {
      article: { title: 'Same SQL', description: 'd', body: 'b', tagList: ['bench', 'cache'] },
    });
    expect(writesOf(created.sent)).toEqual([WRITE_TRANSACTIONS.createArticle]);
    const slug = created.body.article.slug as string;
    // A reader's first look at the article caches it (the create's answer needs no read, so it does not).
    const read = await content.app.inject({
      url: `/api/articles/${slug}`,
      headers: gatewayHeaders(content.keys, 'content', {
        method: 'GET',
        url: `/api/articles/${slug}`,
        identity,
      }),
    });
    expect(read.statusCode).toBe(200);

    const steps = [
      ['POST', `/api/articles/${slug}/comments`, { comment: { body: 'hi' } }, 'addComment'],
      ['POST', `/api/articles/${slug}/comments`, { comment: { body: 'again' } }, 'addComment'],
      ['POST', `/api/articles/${slug}/favorite`, undefined, 'favorite'],
      ['DELETE', `/api/articles/${slug}/favorite`, undefined, 'unfavorite'],
    ] as const;
    for (const [method, url, payload, name] of steps) {
      const { sent: statements } = await write(method, url, payload);
      expect(writesOf(statements), name).toEqual([WRITE_TRANSACTIONS[name]]);
      // Comments take the article from the cache (the reader's look cached it); a favorite's statement
      // finds it by its slug and returns it, so neither reads it: only the listed statement runs.
      expect(
        statements.map((s) => s.sql),
        name,
      ).not.toContain(FIND_ARTICLE);
    }
  });
});
