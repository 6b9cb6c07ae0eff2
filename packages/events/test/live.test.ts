import { describe, expect, it } from 'vitest';
import {
  decodeCatchUpPage,
  decodeLiveMessage,
  encodeLiveMessage,
  type LiveNotification,
} from '../src/index.ts';

const notification: LiveNotification = {
  id: 42,
  type: 'follow',
  actor: { username: 'ada' },
  article: null,
  commentId: null,
  excerpt: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  read: false,
};

describe('live notification message', () => {
  it('encodes v1 and decodes it back', () => {
    const raw = encodeLiveMessage('u-1', notification);
    expect(JSON.parse(raw)).toEqual({ v: 1, userId: 'u-1', notification });
    expect(decodeLiveMessage(raw)).toEqual({ ok: true, message: { v: 1, userId: 'u-1', notification } });
  });

  it('reads the unversioned form publishers sent before as v1', () => {
    const decoded = decodeLiveMessage(JSON.stringify({ userId: 'u-1', notification }));
    expect(decoded).toEqual({ ok: true, message: { userId: 'u-1', notification } });
  });

  it('refuses to encode a notification of the wrong shape', () => {
    const wrong = { ...notification, id: 0 };
    expect(() => encodeLiveMessage('u-1', wrong)).toThrow(/invalid live message v1: \/notification\/id/);
    expect(() => encodeLiveMessage('', notification)).toThrow(/\/userId/);
  });

  it.each([
    ['not JSON', 'not-json', /not JSON/],
    ['JSON null', 'null', /live message v1/],
    ['an empty object', '{}', /live message v1/],
    ['a newer version', JSON.stringify({ v: 2, userId: 'u-1', notification }), /v2 is not accepted/],
    ['no notification', JSON.stringify({ userId: 'u-1' }), /notification/],
    [
      'an id that is not a number',
      JSON.stringify({ userId: 'u-1', notification: { ...notification, id: '4' } }),
      /id/,
    ],
    [
      'a partial notification',
      JSON.stringify({ userId: 'u-1', notification: { id: 4, type: 'follow' } }),
      /v1/,
    ],
  ])('gives the reason for a malformed message: %s', (_what, raw, reason) => {
    const decoded = decodeLiveMessage(raw);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.reason).toMatch(reason);
  });

  it('reads a catch-up page, ignoring its other fields; throws on another shape', () => {
    expect(decodeCatchUpPage({ notifications: [notification], unreadCount: 1, next: null })).toEqual([
      notification,
    ]);
    expect(() => decodeCatchUpPage({ notifications: [{ id: 1 }] })).toThrow(/invalid catch-up page/);
    expect(() => decodeCatchUpPage('nope')).toThrow(/invalid catch-up page/);
  });
});
