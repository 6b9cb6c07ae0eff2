import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ContentDatabase } from '../src/db.ts';
import { ProfileDirectory } from '../src/profiles/profile.directory.ts';

/** What auth's internal route is asked; the projection is never reached by these calls. */
describe("ProfileDirectory asking auth's internal route", () => {
  const seen: IncomingHttpHeaders[] = [];
  let status = 404;
  const server = createServer((req, res) => {
    seen.push(req.headers);
    res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
  });
  let authUrl = '';
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    authUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const warnings: string[] = [];
  const directory = (authToken: string | null) =>
    new ProfileDirectory({
      db: null as unknown as Kysely<ContentDatabase>,
      cache: null,
      authUrl,
      authToken,
      log: { warn: (_obj, msg) => warnings.push(msg ?? '') },
    }) as unknown as { askAuth(username: string): Promise<unknown> };

  it('sends its token as a bearer token', async () => {
    status = 404;
    await expect(directory('t'.repeat(40)).askAuth('ada')).resolves.toBeNull();
    expect(seen.at(-1)?.authorization).toBe(`Bearer ${'t'.repeat(40)}`);
  });

  it('without a token does not call auth and answers 503; a refused token is 503 too', async () => {
    const calls = seen.length;
    await expect(directory(null).askAuth('ada')).rejects.toMatchObject({ code: 'SERVICE_UNAVAILABLE' });
    expect(seen.length).toBe(calls);
    expect(warnings.at(-1)).toMatch(/AUTH_INTERNAL_TOKEN unset/);
    status = 401;
    await expect(directory('w'.repeat(40)).askAuth('ada')).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
    });
    expect(warnings.at(-1)).toMatch(/auth refused AUTH_INTERNAL_TOKEN/);
  });
});
