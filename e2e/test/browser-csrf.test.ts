/// <reference lib="dom" />
/**
 * CSRF in a real browser (headless Chromium driven by playwright-core) against the whole stack: a page on
 * an allowed origin (CORS_ORIGINS) signs up and writes with the session cookie alone; a page on a foreign
 * origin of the same site — which the SameSite=Lax cookie does not stop — cannot make a
 * cookie-authenticated write, neither by a form post nor by `fetch` with credentials (`no-cors` or not);
 * and logging out from the page ends the cookie session. What happened is read back through the API.
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Stack } from '@atoll/testkit';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, startTestStack } from './helpers.ts';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** A page server on its own origin: every path answers an empty HTML page. */
async function pageServer(): Promise<{ server: Server; origin: string }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>page</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

interface PageRequest {
  method?: string;
  mode?: 'cors' | 'no-cors';
  credentials: 'include';
  headers?: Record<string, string>;
  body?: string;
}

/**
 * `fetch` run inside the page; resolves to the status, 'opaque' for a `no-cors` answer, or 'blocked'
 * when the browser refused to send the request or to hand over its answer.
 */
function pageFetch(page: Page, url: string, init: PageRequest): Promise<number | 'blocked' | 'opaque'> {
  return page.evaluate(
    async ([u, i]) => {
      try {
        const res = await fetch(u, i as RequestInit);
        return res.type === 'opaque' ? 'opaque' : res.status;
      } catch {
        return 'blocked';
      }
    },
    [url, init] as const,
  );
}

/** A JSON POST with credentials from inside the page: its status and body. */
function postJsonFrom(page: Page, url: string, body: unknown): Promise<{ status: number; body: any }> {
  return page.evaluate(
    async ([u, b]) => {
      const res = await fetch(u, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json' },
        body: b,
      });
      return { status: res.status, body: await res.json() };
    },
    [url, JSON.stringify(body)] as const,
  );
}

describe('CSRF in a real browser (headless Chromium)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let browser: Browser;
  let allowed: { server: Server; origin: string };
  let foreign: { server: Server; origin: string };
  let api: ReturnType<typeof apiClient>;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) {
      throw new Error(
        `no Chromium at ${CHROMIUM}: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH`,
      );
    }
    allowed = await pageServer();
    foreign = await pageServer();
    ({ stack, dispose } = await startTestStack('browser', { CORS_ORIGINS: allowed.origin }));
    api = apiClient(stack.gatewayUrl);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    allowed?.server.close();
    foreign?.server.close();
    await dispose?.();
  });

  it('a foreign page cannot write with the cookie; an allowed one can; logout ends the cookie session', async () => {
    const context = await browser.newContext();
    const gw = stack.gatewayUrl;
    const json = { 'content-type': 'application/json' };

    // An allowed origin signs up: the answer sets the session cookie in this browser.
    const app = await context.newPage();
    await app.goto(`${allowed.origin}/`);
    const user = {
      username: `brw${Date.now() % 1e6}`,
      email: `brw${Date.now()}@example.com`,
      password: 'browser pass',
    };
    const signup = await postJsonFrom(app, `${gw}/api/users`, { user });
    expect(signup.status).toBe(201);
    const token = signup.body.user.token as string;
    expect((await context.cookies(gw)).map((c) => c.name)).toContain('atoll_session');
    // And the device cookie, through the gateway into the browser's jar, HttpOnly like the session's.
    const device = (await context.cookies(gw)).find((c) => c.name === 'atoll_device');
    expect(device?.httpOnly).toBe(true);

    // The cookie alone authenticates a write from the allowed origin.
    const article = { article: { title: `Browser ${Date.now()}`, description: 'd', body: 'b' } };
    const created = await postJsonFrom(app, `${gw}/api/articles`, article);
    expect(created.status).toBe(201);
    const slug = created.body.article.slug as string;

    // A foreign origin of the same site: the browser sends the cookie, the gateway refuses the write.
    const evil = await context.newPage();
    await evil.goto(`${foreign.origin}/`);
    const favorite = `${gw}/api/articles/${slug}/favorite`;
    // A simple request needs no preflight: the browser sends it with the cookie (its answer is hidden from
    // the page: opaque, or blocked by the gateway's Cross-Origin-Resource-Policy).
    expect(['opaque', 'blocked']).toContain(
      await pageFetch(evil, favorite, { method: 'POST', mode: 'no-cors', credentials: 'include' }),
    );
    // A JSON write needs a preflight, which this origin does not pass.
    expect(
      await pageFetch(evil, `${gw}/api/articles`, {
        method: 'POST',
        credentials: 'include',
        headers: json,
        body: JSON.stringify(article),
      }),
    ).toBe('blocked');
    expect(
      await pageFetch(evil, `${gw}/api/user`, {
        method: 'PUT',
        credentials: 'include',
        headers: json,
        body: JSON.stringify({ user: { bio: 'pwned' } }),
      }),
    ).toBe('blocked');
    // A form post navigates to the gateway with the cookie: 403 before anything reaches a service.
    const [formAnswer] = await Promise.all([
      evil.waitForNavigation(),
      evil.evaluate((action) => {
        const form = document.createElement('form');
        form.method = 'POST';
        form.action = action;
        document.body.append(form);
        form.submit();
      }, favorite),
    ]);
    expect(formAnswer?.status()).toBe(403);
    expect(await formAnswer?.json()).toEqual({
      errors: { origin: ['is not allowed to use the session cookie'] },
      code: 'CSRF_ORIGIN_REJECTED',
    });
    // Both reached the gateway with the cookie and were refused there; nothing was written. (The log
    // lines come from the gateway process's output: on a busy machine the second may trail the answer.)
    const refused = () =>
      stack.services.gateway.logs.filter(
        (l) =>
          l.msg === 'request completed' && l.url === `/api/articles/${slug}/favorite` && l.status === 403,
      );
    await eventually(async () => refused().length >= 2, 10_000);
    expect(refused()).toHaveLength(2);
    const after = await api('GET', `/api/articles/${slug}`, { token });
    expect(after.body.article).toMatchObject({ favorited: false, favoritesCount: 0 });
    expect((await api('GET', `/api/articles?author=${user.username}`)).body.articlesCount).toBe(1);
    expect((await api('GET', '/api/user', { token })).body.user.bio).toBeNull();

    // The allowed origin can do what the foreign one could not.
    expect(await pageFetch(app, favorite, { method: 'POST', credentials: 'include' })).toBe(200);
    expect((await api('GET', `/api/articles/${slug}`, { token })).body.article.favoritesCount).toBe(1);

    // Logging out from the page ends the cookie session (and the token is the same session).
    expect(await pageFetch(app, `${gw}/api/user/session`, { method: 'DELETE', credentials: 'include' })).toBe(
      204,
    );
    expect(await pageFetch(app, `${gw}/api/user`, { credentials: 'include' })).toBe(401);
    expect((await api('GET', '/api/user', { token })).status).toBe(401);
    expect((await context.cookies(gw)).map((c) => c.name)).not.toContain('atoll_session');
    await context.close();
  });
});
