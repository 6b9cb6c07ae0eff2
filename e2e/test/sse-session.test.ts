/**
 * A live notification stream lives no longer than its session, and a user holds a bounded number of
 * them: after "log out everywhere" or "log out", an open stream delivers nothing more and ends with
 * `event: end`; a stream beyond SSE_MAX_STREAMS_PER_USER ends the user's oldest.
 */
import type { Stack } from '@atoll/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiClient } from './api.ts';
import { eventually, signUpAll, startTestStack } from './helpers.ts';
import { openStream, type SseClient } from './sse.ts';

const PASSWORD = 'correct horse';

describe('live streams end with their session (whole stack)', () => {
  let stack: Stack;
  let dispose: () => Promise<void>;
  let api: ReturnType<typeof apiClient>;
  const tokens: Record<string, string> = {};
  const streams: SseClient[] = [];
  const open = async (token: string) => {
    const stream = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, token);
    streams.push(stream);
    expect(stream.status).toBe(200);
    return stream;
  };
  const login = async (name: string) =>
    (
      await api('POST', '/api/users/login', {
        body: { user: { email: `${name}@example.com`, password: PASSWORD } },
      })
    ).body.user.token as string;
  const ended = (stream: SseClient, ms: number) =>
    Promise.race([
      stream.ended.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
    ]);
  const notifications = (stream: SseClient) => stream.events.filter((e) => e.event === 'notification');

  beforeAll(async () => {
    ({ stack, dispose } = await startTestStack('sse-session', {
      SSE_HEARTBEAT_MS: '300',
      SSE_MAX_STREAMS_PER_USER: '2',
    }));
    api = apiClient(stack.gatewayUrl);
    Object.assign(tokens, await signUpAll(api, ['amy', 'ben', 'cat', 'dan'], PASSWORD));
  }, 90_000);
  afterAll(async () => {
    for (const s of streams) s.close();
    await dispose();
  });

  it('after log out everywhere, a notification for that user is not delivered and the stream ends', async () => {
    const stream = await open(tokens.amy ?? '');
    await api('POST', '/api/profiles/amy/follow', { token: tokens.ben });
    expect(await eventually(async () => notifications(stream).length === 1, 20_000)).toBe(true);

    expect((await api('DELETE', '/api/user/sessions', { token: tokens.amy })).status).toBe(204);
    await api('POST', '/api/profiles/amy/follow', { token: tokens.cat });
    expect(await ended(stream, 5000)).toBe(true);
    expect(notifications(stream)).toHaveLength(1);
    expect(stream.events.at(-1)).toMatchObject({ event: 'end', data: '{"reason":"session-ended"}' });

    // The notification was made: it is there for amy's next session, just not on the dead stream.
    const token = await login('amy');
    tokens.amy = token;
    expect(
      await eventually(
        async () => (await api('GET', '/api/notifications', { token })).body.notifications.length === 2,
        20_000,
      ),
    ).toBe(true);
  }, 60_000);

  it('after log out, the stream ends at its next heartbeat', async () => {
    const stream = await open(tokens.amy ?? '');
    expect(await eventually(async () => stream.comments > 0)).toBe(true);
    expect((await api('DELETE', '/api/user/session', { token: tokens.amy })).status).toBe(204);
    expect(await ended(stream, 3000)).toBe(true);
    expect(stream.events.at(-1)).toMatchObject({ event: 'end', data: '{"reason":"session-ended"}' });
    // The token cannot open another.
    const again = await openStream(`${stack.gatewayUrl}/api/notifications/stream`, tokens.amy ?? '');
    expect(again.status).toBe(401);
  }, 30_000);

  it("a stream beyond SSE_MAX_STREAMS_PER_USER ends the user's oldest; the others keep delivering", async () => {
    const first = await open(tokens.dan ?? '');
    const second = await open(tokens.dan ?? '');
    expect(await ended(first, 500)).toBe(false);
    const third = await open(tokens.dan ?? '');
    expect(await ended(first, 3000)).toBe(true);
    expect(first.events.at(-1)).toMatchObject({ event: 'end', data: '{"reason":"too-many-streams"}' });
    await api('POST', '/api/profiles/dan/follow', { token: tokens.ben });
    for (const stream of [second, third])
      expect(await eventually(async () => notifications(stream).length === 1, 20_000)).toBe(true);
    expect(notifications(first)).toHaveLength(0);
  }, 60_000);
});
