// Reference: the password hashing of atoll's login and sign-up before Argon2id, alone: scrypt at
// N=2^17, r=8, p=1 (128 MiB) on libuv's thread pool, with no admission limit, as apps/auth did it.
// POST /login verifies a stored hash, POST /signup makes a new one; nothing else (no database, no
// Redis, no gateway), so a row against it understates the old path's cost, never overstates it.
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import Fastify from 'fastify';

const N = 2 ** 17;
const R = 8;
const maxmem = 128 * R * (N + 3) + 1024 * 1024;
const hash = (password: string, salt: Buffer) =>
  new Promise<Buffer>((resolve, reject) =>
    scrypt(password, salt, 32, { N, r: R, p: 1, maxmem }, (err, key) => (err ? reject(err) : resolve(key))),
  );
const salt = randomBytes(16);
const stored = await hash('correct horse battery', salt);

const app = Fastify({ logger: false });
app.post<{ Body: { user: { password: string } } }>('/login', async (request, reply) => {
  const key = await hash(request.body.user.password, salt);
  return timingSafeEqual(key, stored) ? { ok: true } : reply.code(401).send({ ok: false });
});
app.post<{ Body: { user: { password: string } } }>('/signup', async (request) => {
  await hash(request.body.user.password, randomBytes(16));
  return { ok: true };
});
await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) });
console.log(JSON.stringify({ msg: 'listening' }));
