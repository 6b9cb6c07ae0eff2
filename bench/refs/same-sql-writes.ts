// Reference: a bare Fastify + pg answering atoll's write URLs with exactly the SQL content runs for them
// (write-sql.ts), each write in one transaction (or one statement) as content does, for the user USER_ID / USERNAME: the
// database work a write cannot avoid, without validation, identity, cache invalidation or outbox relay.
import { randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import pg from 'pg';
import { FIND_ARTICLE, WRITE_TRANSACTIONS, type Write } from './write-sql.ts';

const pool = new pg.Pool({
  connectionString: process.env.DATABASE_URL,
  max: 10, // content's pool size (@atoll/db's default)
  options: `-c search_path=${process.env.SCHEMA ?? 'content'},public`,
});
const userId = process.env.USER_ID as string;
const username = process.env.USERNAME as string;

/**
 * Each statement's parameters: fixed, or worked out from the results of the statements before it (by
 * index); `null` skips the statement, as content skips the count when the favorite did not change.
 */
type Params = unknown[] | ((results: pg.QueryResult[]) => unknown[] | null);

/**
 * Runs one write's statements, in order, on one client (a transaction when they start with `begin`);
 * returns each one's result.
 */
async function transaction(write: Write, params: Params[]): Promise<pg.QueryResult[]> {
  const client = await pool.connect();
  const results: pg.QueryResult[] = [];
  try {
    for (const [index, sql] of WRITE_TRANSACTIONS[write].entries()) {
      const given = params[index] ?? [];
      const values = typeof given === 'function' ? given(results) : given;
      if (values) results[index] = await client.query(sql, values);
    }
    return results;
  } catch (err) {
    if ((WRITE_TRANSACTIONS[write][0] as string) === 'begin') await client.query('rollback');
    throw err;
  } finally {
    client.release();
  }
}

const findArticle = async (slug: string) => (await pool.query(FIND_ARTICLE, [slug])).rows[0];
/** Content resolves a comment's article from its cache: here, once per slug, kept in this process. */
const cachedArticles = new Map<string, { id: string }>();
const cachedArticle = async (slug: string) => {
  let article = cachedArticles.get(slug);
  if (!article) {
    article = await findArticle(slug);
    if (article) cachedArticles.set(slug, article);
  }
  return article as { id: string };
};
const firstRow = (result: pg.QueryResult | undefined) => result?.rows[0];

const app = Fastify({ logger: false });
app.post<{ Body: { article: { title: string; description: string; body: string; tagList: string[] } } }>(
  '/api/articles',
  async (request, reply) => {
    const { title, description, body, tagList } = request.body.article;
    const slug = `${title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${randomBytes(5).toString('hex')}`;
    // No mentions: the statement writes no jobs.
    const results = await transaction('createArticle', [
      [userId, username, new Date(0), slug, title, description, body, userId, tagList, username],
    ]);
    return reply.code(201).send({ article: { ...firstRow(results[0]), tagList } });
  },
);
app.post<{ Params: { slug: string }; Body: { comment: { body: string } } }>(
  '/api/articles/:slug/comments',
  async (request, reply) => {
    const article = await cachedArticle(request.params.slug);
    const { body } = request.body.comment;
    // Your own article, no mentions: no notification jobs ('[]').
    const results = await transaction('addComment', [
      [userId, username, new Date(0), article.id, userId, body, '[]', username],
    ]);
    return reply.code(201).send({ comment: firstRow(results[0]) });
  },
);
/**
 * Favorite and unfavorite: one statement each, by slug (the count only when the row changed), on your own
 * article; it returns the article after the change, which is the answer.
 */
const favorite = (write: 'favorite' | 'unfavorite') => async (request: { params: { slug: string } }) => {
  const params = [request.params.slug, userId, username, new Date(0), userId];
  // The job a favorite would write, as content sends it; none is written on your own article.
  const job = { v: 1, actorId: userId, actorUsername: username, occurredAt: new Date().toISOString() };
  const results = await transaction(write, [
    write === 'favorite' ? [...params, JSON.stringify(job), userId] : params,
  ]);
  const { tag_list: tagList, ...article } = firstRow(results[0]);
  return { article: { ...article, tagList } };
};
app.post<{ Params: { slug: string } }>('/api/articles/:slug/favorite', favorite('favorite'));
app.delete<{ Params: { slug: string } }>('/api/articles/:slug/favorite', favorite('unfavorite'));
app.addHook('onClose', () => pool.end());
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
console.log(JSON.stringify({ msg: 'listening' }));
