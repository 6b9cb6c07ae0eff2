/** The live stream's pure rules (src/live/rules.ts). */
import { describe, expect, it } from 'vitest';
import {
  admit,
  atTick,
  frames,
  lastEventId,
  lifetimeMs,
  RECENT_IDS,
  RecentIds,
  reconnectMs,
  tickMs,
  withoutRepeats,
} from '../src/live/rules.ts';
import { liveNotification as n } from './helpers.ts';

const caps = { maxStreamsPerUser: 2, maxStreamsPerAddress: 3, maxStreams: 5 };
const none = { total: 0, fromAddress: 0, ofUser: 0, oldestFromSameAddress: false };

describe('admit', () => {
  it('opens below every cap', () => {
    expect(admit(caps, none)).toEqual({ ok: true, endsOldest: false });
  });

  it('a full instance: 503 STREAMS_UNAVAILABLE, Retry-After 5', () => {
    expect(admit(caps, { ...none, total: 5 })).toEqual({
      ok: false,
      code: 'STREAMS_UNAVAILABLE',
      status: 503,
      retryAfterS: 5,
    });
  });

  it('an address at its cap: 429 STREAMS_TOO_MANY, Retry-After 60, whatever the accounts', () => {
    expect(admit(caps, { ...none, total: 3, fromAddress: 3 })).toEqual({
      ok: false,
      code: 'STREAMS_TOO_MANY',
      status: 429,
      retryAfterS: 60,
    });
  });

  it("a user at their cap ends their oldest, whose slot is the new one's", () => {
    expect(admit(caps, { ...none, total: 2, fromAddress: 2, ofUser: 2 })).toEqual({
      ok: true,
      endsOldest: true,
    });
    // Full instance, but the oldest's slot frees one.
    expect(admit(caps, { ...none, total: 5, fromAddress: 2, ofUser: 2 })).toMatchObject({ ok: true });
    // Address at its cap: the oldest frees a slot only when it is from the same address.
    const atAddressCap = { ...none, total: 3, fromAddress: 3, ofUser: 2 };
    expect(admit(caps, { ...atAddressCap, oldestFromSameAddress: true })).toMatchObject({ ok: true });
    expect(admit(caps, atAddressCap)).toMatchObject({ ok: false, code: 'STREAMS_TOO_MANY' });
  });
});

describe('lastEventId', () => {
  it('a plain number of at most 15 digits, else null', () => {
    expect(lastEventId('42')).toBe(42);
    expect(lastEventId('999999999999999')).toBe(999999999999999);
    for (const bad of [undefined, '', '-1', '1.5', ' 1', '1e3', '1234567890123456', ['1', '2']])
      expect(lastEventId(bad)).toBeNull();
  });
});

describe('timing', () => {
  it('a lifetime is the longest less up to a tenth', () => {
    expect(lifetimeMs(60_000, 0)).toBe(54_000);
    expect(lifetimeMs(60_000, 1)).toBe(60_000);
  });

  it('a reconnect hint between 0.5 and 2.5 s at the end of a life, 0.5 and 10.5 s after missed events', () => {
    expect(reconnectMs('max-lifetime', 0)).toBe(500);
    expect(reconnectMs('max-lifetime', 0.999_999)).toBe(2499);
    expect(reconnectMs('missed-events', 0)).toBe(500);
    expect(reconnectMs('missed-events', 0.999_999)).toBe(10_499);
  });

  it('the hub ticks every second, or at each heartbeat when they are closer', () => {
    expect(tickMs(15_000)).toBe(1000);
    expect(tickMs(200)).toBe(200);
  });

  it('at a tick a stream retires once its life is over, else beats when due', () => {
    expect(atTick({ endsAt: 100, nextBeatAt: 50 }, 49)).toBeNull();
    expect(atTick({ endsAt: 100, nextBeatAt: 50 }, 50)).toBe('heartbeat');
    expect(atTick({ endsAt: 100, nextBeatAt: 50 }, 100)).toBe('retire');
  });
});

describe('RecentIds', () => {
  it('remembers the last RECENT_IDS ids', () => {
    const recent = new RecentIds();
    expect(recent.has(1)).toBe(false);
    for (let id = 1; id <= RECENT_IDS; id += 1) recent.add(id);
    expect(recent.has(1)).toBe(true);
    expect(recent.has(RECENT_IDS)).toBe(true);
    recent.add(RECENT_IDS + 1);
    expect(recent.has(1)).toBe(false);
    expect(recent.has(2)).toBe(true);
  });

  it('holds ids beyond 32 bits exactly', () => {
    const recent = new RecentIds();
    recent.add(999_999_999_999_999);
    expect(recent.has(999_999_999_999_999)).toBe(true);
    expect(recent.has(999_999_999_999_998)).toBe(false);
  });
});

describe('frames', () => {
  it('writes each event as the clients read it', () => {
    expect(frames.notification(n(7))).toBe(`id: 7\nevent: notification\ndata: ${JSON.stringify(n(7))}\n\n`);
    expect(frames.end('session-ended')).toBe('event: end\ndata: {"reason":"session-ended"}\n\n');
    expect(frames.reconnect(900, 'max-lifetime')).toBe(
      'retry: 900\nevent: reconnect\ndata: {"reason":"max-lifetime"}\n\n',
    );
    expect(frames.reconnect(4000, 'missed-events')).toBe(
      'retry: 4000\nevent: reconnect\ndata: {"reason":"missed-events"}\n\n',
    );
  });

  it('a catch-up sends each id once, in order', () => {
    expect(withoutRepeats([n(1), n(2), n(3), n(2), n(4), n(3)]).map((x) => x.id)).toEqual([1, 2, 3, 4]);
  });
});
