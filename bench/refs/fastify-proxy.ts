// Reference: a Fastify proxy (@fastify/reply-from over undici, as the gateway uses) in front of UPSTREAM,
// with nothing else: the best a proxy on this stack can do.
import replyFrom from '@fastify/reply-from';
import Fastify from 'fastify';

const app = Fastify({ logger: false });
await app.register(replyFrom, { base: process.env.UPSTREAM as string });
app.get('/*', (request, reply) => reply.from(request.url));
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
console.log(JSON.stringify({ msg: 'listening' }));
