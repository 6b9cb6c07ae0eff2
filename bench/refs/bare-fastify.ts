// Reference: a bare Fastify hello-world, nothing but one route and no logging.
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', async () => ({ hello: 'world' }));
// The same, answering with bytes the size of a cached article (about 2.5 KB), made once: the floor for a
// response of that size on this stack.
const article = Buffer.from(JSON.stringify({ article: { slug: 'bench', body: 'x'.repeat(2300) } }));
app.get('/article', (_request, reply) => reply.type('application/json; charset=utf-8').send(article));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
console.log(JSON.stringify({ msg: 'listening' }));
