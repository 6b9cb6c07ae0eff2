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

/**
 * The transactions among `sent`: each client's statements from a `begin` to its `commit`. The outbox
 * relay's own transactions (it runs after every commit, on its own schedule) are not the request's.
 */
function transactions(sent: Sent[]): string[][] {
  const open = new Map<object, string[]>();
  const done: string[][] = [];
  for (const { client, sql } of sent) {
    if (sql === 'begin') open.set(client, []);
    const current = open.get(client);
    if (!current) continue;
    current.push(sql);
    if (sql === 'commit') {
      open.delete(client);
      if (!current.some((s) => s.includes('"job_outbox"'))) done.push(current);
    }
  }
  return done;
}

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

  /** Sends one write as the gateway would, and returns the statements pg received while it ran. */
  const write = async (method: 'POST' | 'DELETE', url: string, payload?: object) => {
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

  it('runs, for each write, exactly the transaction the reference runs', async () => {
    const created = await write('POST', '/api/articles', {
      article: { title: 'Same SQL', description: 'd', body: 'b', tagList: ['bench', 'cache'] },
    });
    expect(transactions(created.sent)).toEqual([WRITE_TRANSACTIONS.createArticle]);
    const slug = created.body.article.slug as string;

    const steps = [
      ['POST', `/api/articles/${slug}/comments`, { comment: { body: 'hi' } }, 'addComment'],
      ['POST', `/api/articles/${slug}/favorite`, undefined, 'favorite'],
      ['DELETE', `/api/articles/${slug}/favorite`, undefined, 'unfavorite'],
    ] as const;
    for (const [method, url, payload, name] of steps) {
      const { sent: statements } = await write(method, url, payload);
      expect(transactions(statements), name).toEqual([WRITE_TRANSACTIONS[name]]);
      // The article is looked up by its slug first, outside the transaction.
      expect(statements[0]?.sql, name).toBe(FIND_ARTICLE);
    }
  });
});
