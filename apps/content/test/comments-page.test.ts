/**
 * `GET /api/articles/:slug/comments` is bounded: at most 500 comments, oldest first, with optional
 * `limit` (1–500) and `offset`; anything else is a 422 in the RealWorld shape.
 */
import { createDb } from '@atoll/db';
import { gatewayHeaders } from '@atoll/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SCHEMA } from '../src/migrations/index.ts';
import { type ContentFixture, startContentApp } from './content-fixture.ts';

const AUTHOR = '00000000-0000-0000-0000-00000000000a';
const TOTAL = 520;

describe('a page of comments', () => {
  let content: ContentFixture;
  let ids: number[] = [];

  beforeAll(async () => {
    content = await startContentApp('content-comments', [{ user_id: AUTHOR, username: 'ada' }]);
    const db = createDb<any>({ url: content.database.url, schema: SCHEMA });
    const article = await db
      .insertInto('articles')
      .values({ slug: 'many', title: 'Many', description: 'comments', body: 'b', author_id: AUTHOR })
      .returning('id')
      .executeTakeFirstOrThrow();
    const rows = await sql<{ id: string }>`
      INSERT INTO comments (article_id, author_id, body)
      SELECT ${article.id}, ${AUTHOR}, 'comment ' || n FROM generate_series(1, ${TOTAL}) AS n
      RETURNING id`.execute(db);
    ids = rows.rows.map((r) => Number(r.id)).sort((a, b) => a - b);
    await db.destroy();
  });
  afterAll(async () => {
    await content?.close();
  });

  const page = async (query = '') => {
    const url = `/api/articles/many/comments${query}`;
    const res = await content.app.inject({ url, headers: gatewayHeaders(content.keys, 'content', { url }) });
    return { status: res.statusCode, body: res.json() };
  };

  it('without a query (what RealWorld clients send): the oldest 500, oldest first', async () => {
    const { status, body } = await page();
    expect(status).toBe(200);
    expect(body.comments.map((c: { id: number }) => c.id)).toEqual(ids.slice(0, 500));
    expect(body.comments[0]).toMatchObject({ body: 'comment 1', author: { username: 'ada' } });
  });

  it('limit and offset page through the rest in the same order', async () => {
    const { body } = await page('?limit=500&offset=500');
    expect(body.comments.map((c: { id: number }) => c.id)).toEqual(ids.slice(500));
    const small = await page('?limit=3&offset=10');
    expect(small.body.comments.map((c: { id: number }) => c.id)).toEqual(ids.slice(10, 13));
    expect((await page(`?offset=${TOTAL}`)).body).toEqual({ comments: [] });
  });

  it('a limit over 500, under 1, a negative or huge offset, or not a number: 422', async () => {
    for (const query of [
      '?limit=501',
      '?limit=0',
      '?offset=-1',
      '?offset=100001',
      '?limit=ten',
      '?limit=1e999',
    ]) {
      const { status, body } = await page(query);
      expect(status, query).toBe(422);
      expect(body.code, query).toBe('VALIDATION_FAILED');
      expect(Object.keys(body.errors).length, query).toBeGreaterThan(0);
    }
  });
});
