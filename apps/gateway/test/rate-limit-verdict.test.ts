/** The rate limits' verdict on one request's counts (rate-limit/plugin.ts `verdict`): headers and refusal. */
import { describe, expect, it } from 'vitest';
import type { Tier, TierLimit } from '../src/config.ts';
import { verdict } from '../src/rate-limit/plugin.ts';

const limits: Record<Tier, TierLimit> = {
  anonymous: { max: 3, windowMs: 60_000 },
  user: { max: 5, windowMs: 60_000 },
  address: { max: 10, windowMs: 60_000 },
  auth: { max: 2, windowMs: 60_000 },
  mail: { max: 1, windowMs: 600_000 },
};

/** The verdict on counts given as [current, ttl ms], in the order of `tiers`. */
const judge = (tiers: Tier[], counts: Array<[number, number]>, own: Tier) =>
  verdict(
    tiers,
    counts.map(([current, ttl]) => ({ current, ttl })),
    limits,
    own,
  );

describe('verdict', () => {
  it('passes under every limit; the address ceiling is shown only when it is the closer one', () => {
    expect(
      judge(
        ['anonymous', 'address'],
        [
          [1, 59_001],
          [1, 59_001],
        ],
        'anonymous',
      ),
    ).toEqual({
      headers: { 'ratelimit-policy': '"anonymous";q=3;w=60', ratelimit: '"anonymous";r=2;t=60' },
      exceeded: null,
      retryAfter: 0,
    });
    const closer = judge(
      ['user', 'address'],
      [
        [1, 1000],
        [9, 2000],
      ],
      'user',
    );
    expect(closer.headers).toEqual({
      'ratelimit-policy': '"user";q=5;w=60, "address";q=10;w=60',
      ratelimit: '"user";r=4;t=1, "address";r=1;t=2',
    });
  });

  it('refuses on the exceeded tier that frees up last, at least a second from now', () => {
    const refused = judge(
      ['mail', 'user', 'address'],
      [
        [2, 300_000],
        [6, 10],
        [3, 10],
      ],
      'user',
    );
    expect(refused.exceeded).toBe('mail');
    expect(refused.retryAfter).toBe(300);
    expect(refused.headers.ratelimit).toBe('"mail";r=0;t=300, "user";r=0;t=1');
    const soon = judge(
      ['anonymous', 'address'],
      [
        [4, 0],
        [4, 0],
      ],
      'anonymous',
    );
    expect(soon).toMatchObject({ exceeded: 'anonymous', retryAfter: 1 });
  });
});
