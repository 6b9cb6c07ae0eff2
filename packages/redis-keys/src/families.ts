/**
 * The key families of the key map as matchers, for the key-space audit (@atoll/redis `auditKeySpace`):
 * each KEY_SPECS pattern becomes a regular expression (a `<placeholder>` is any run without braces), and
 * each BullMQ queue (QUEUE_USERS) is one family of its own, `<prefix>:{bull}:<queue>:*`. Nothing here is
 * written twice: the patterns, instances, types and TTL rules are the specs' own.
 */
import type { KeySpec, RedisRole } from './define.ts';
import { KEY_DEFINITIONS as KEY_SPECS, QUEUE_USERS } from './key-map.ts';

/** The name Redis's TYPE command gives each spec type (null: any, or not a key). */
const REDIS_TYPE: Record<KeySpec['type'], string | null> = {
  String: 'string',
  Hash: 'hash',
  Set: 'set',
  'Sorted Set': 'zset',
  List: 'list',
  Stream: 'stream',
  Channel: null,
  'Key prefix': null,
};

export interface KeyFamily {
  /** A KEY_SPECS name, or `queue:<name>` for a BullMQ queue. */
  name: string;
  instance: RedisRole;
  /** What TYPE answers for its keys; null for BullMQ's (hashes, lists, sorted sets, streams…). */
  redisType: string | null;
  /** True when every key of the family must carry a TTL (its spec's `ttl` does not start with `none`). */
  expires: boolean;
  /** Matches a whole key, prefix included. */
  regex: RegExp;
}

/**
 * True when a spec says its keys carry a TTL: its `ttl` text starts with `none` exactly when they do not
 * (this package's tests hold every spec to that, and to a TTL on the cache and session instances).
 */
export function mustExpire(spec: Pick<KeySpec, 'ttl'>): boolean {
  return !/^none\b/.test(spec.ttl);
}

const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A spec pattern under `prefix` as an anchored regular expression. */
function patternRegex(prefix: string, pattern: string): RegExp {
  const parts = pattern.split(/<[^>]*>/).map(literal);
  return new RegExp(`^${literal(prefix)}:${parts.join('[^{}]+')}$`);
}

/** Every key family under `prefix` (channels hold no keys and are left out). */
export function keyFamilies(prefix: string): KeyFamily[] {
  const families: KeyFamily[] = [];
  for (const [name, spec] of Object.entries(KEY_SPECS) as Array<[string, KeySpec]>) {
    if (spec.type === 'Channel' || name === 'bullPrefix') continue;
    families.push({
      name,
      instance: spec.instance,
      redisType: REDIS_TYPE[spec.type],
      expires: mustExpire(spec),
      regex: patternRegex(prefix, spec.pattern),
    });
  }
  const bull = `${literal(prefix)}:${literal(KEY_SPECS.bullPrefix.pattern)}`;
  for (const queue of Object.keys(QUEUE_USERS)) {
    families.push({
      name: `queue:${queue}`,
      instance: KEY_SPECS.bullPrefix.instance,
      redisType: null,
      expires: mustExpire(KEY_SPECS.bullPrefix),
      // BullMQ's keys are `<bullPrefix>:<queue>:<suffix>`, the base key `<bullPrefix>:<queue>:` included.
      regex: new RegExp(`^${bull}:${literal(queue)}:`),
    });
  }
  return families;
}

/** The family a key belongs to, on any instance; null when no definition matches it. */
export function familyOf(families: readonly KeyFamily[], key: string): KeyFamily | null {
  return families.find((f) => f.regex.test(key)) ?? null;
}
