/**
 * @atoll/redis-keys: the only place a Redis key string is built. Each key is defined once in
 * key-map.ts (`defineKey`); this module turns the definitions into one builder per key for a deployment
 * prefix (`createKeys`), and re-exports what is derived from them elsewhere: the ACL users (acl.ts), the
 * audit's key families (families.ts), the README's key map (readme.ts) and the content cache's ids
 * (cache-ids.ts).
 */
import type { KeyDefinition, PatternArgs } from './define.ts';
import { KEY_DEFINITIONS, type KeyName } from './key-map.ts';

/** Every key's spec (pattern, instance, type, TTL, users), by name: the definitions themselves. */
export const KEY_SPECS = KEY_DEFINITIONS;

/** One builder per key: its pattern's placeholders, filled in order, under the prefix. */
export type KeyBuilders = {
  readonly [N in KeyName]: (...args: PatternArgs<(typeof KEY_DEFINITIONS)[N]['pattern']>) => string;
};

const PREFIX_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/i;

/** Builds the key functions for one deployment prefix. */
export function createKeys(prefix = 'atoll'): KeyBuilders & { readonly prefix: string } {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new TypeError(`Redis key prefix must match ${PREFIX_PATTERN}, got ${JSON.stringify(prefix)}`);
  }
  const builders = Object.fromEntries(
    Object.entries(KEY_DEFINITIONS).map(([name, definition]) => {
      const def = definition as KeyDefinition;
      return [name, (...args: string[]) => def.build(prefix, ...(args as []))];
    }),
  ) as unknown as KeyBuilders;
  return { prefix, ...builders };
}

export type Keys = ReturnType<typeof createKeys>;

export {
  type AclUsers,
  aclFile,
  aclRules,
  auditRules,
  DENIED_COMMANDS,
  type KeyPattern,
  keyPatterns,
  REPLICATION_USER,
  SENTINEL_CLIENT_RULES,
  SENTINEL_USER,
  sentinelAclFile,
  sentinelAclLines,
  servicesOn,
} from './acl.ts';
export { cacheIds, cacheTags, type ListQuery } from './cache-ids.ts';
export {
  type ChannelAccess,
  defineKey,
  hashTag,
  type KeyAccess,
  type KeyDefinition,
  type KeySpec,
  type KeyType,
  type PatternArgs,
  type Placeholder,
  type RedisRole,
  SERVICES,
  type Service,
} from './define.ts';
export { familyOf, type KeyFamily, keyFamilies, mustExpire } from './families.ts';
export { KEY_DEFINITIONS, type KeyName, QUEUE_USERS, type QueueName } from './key-map.ts';
export { keyMapTable } from './readme.ts';
export { assertOneSlot, CrossSlotError, HASH_SLOTS, hashSlot } from './slot.ts';
