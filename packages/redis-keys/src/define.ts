/**
 * `defineKey`: one definition per Redis key, from which everything else about the key is derived — its
 * builder (`createKeys`), its ACL rules (acl.ts), its audit family (families.ts) and its line in the key
 * map of the README (readme.ts). Nothing about a key is written a second time.
 *
 * A pattern names its variable parts as `<placeholders>`, in the order the builder takes them:
 * - `<a|b|c>` is a choice: the builder takes one of the literals `'a' | 'b' | 'c'`;
 * - any other `<name>` is an id: a non-empty string without braces (so a hash tag never ends early).
 * The hash tag — the part Redis Cluster hashes into a slot — is the first `{...}` of the pattern.
 */

export type RedisRole = 'cache' | 'session' | 'queue';

/** The services that connect to Redis, each as its own ACL user (see acl.ts). */
export const SERVICES = ['gateway', 'auth', 'content', 'notifier'] as const;
export type Service = (typeof SERVICES)[number];

/**
 * What a service may do with a key: read it, write it, or both (Redis's `%R~`, `%W~` and `~`). A
 * channel is published on, subscribed to, or both.
 */
export type KeyAccess = 'read' | 'write' | 'readwrite';
export type ChannelAccess = 'publish' | 'subscribe' | 'publish-subscribe';

export type KeyType = 'String' | 'Hash' | 'Set' | 'Sorted Set' | 'List' | 'Stream' | 'Channel' | 'Key prefix';

export interface KeySpec {
  /** The key pattern, with `<placeholders>`, as it appears under the prefix. */
  readonly pattern: string;
  /** What the key holds and who writes it, in a sentence or two. */
  readonly holds: string;
  readonly instance: RedisRole;
  readonly type: KeyType;
  /** How long the key lives, in words; `none` only on the queue instance and for channels. */
  readonly ttl: string;
  /** The TTL in ms, where it is one constant (the code that sets it reads it from here). */
  readonly ttlMs?: number;
  /** The setting that gives the TTL, where it is configurable. */
  readonly ttlSetting?: string;
  /**
   * The services that use the key and how: the only ones whose Redis users may touch it (acl.ts turns
   * this into each service's ACL rules). Empty only for `bullPrefix`, whose users are per queue
   * (QUEUE_USERS).
   */
  readonly users: Partial<Record<Service, KeyAccess | ChannelAccess>>;
}

/** The builder's arguments for a pattern's placeholders, in order. */
export type PatternArgs<P extends string> = P extends `${string}<${infer H}>${infer Rest}`
  ? [PlaceholderArg<H>, ...PatternArgs<Rest>]
  : [];
type PlaceholderArg<H extends string> = H extends `${string}|${string}` ? Choices<H> : string;
type Choices<H extends string> = H extends `${infer A}|${infer B}` ? A | Choices<B> : H;

/** One placeholder of a pattern: its name, and its literals when it is a choice. */
export interface Placeholder {
  readonly name: string;
  readonly choices: readonly string[] | null;
}

export interface KeyDefinition<P extends string = string> extends KeySpec {
  readonly pattern: P;
  readonly placeholders: readonly Placeholder[];
  /** The hash-tag part of the pattern (the first `{...}`), or null when the whole key is hashed. */
  readonly slotTag: string | null;
  /** The key under `prefix` (which `createKeys` has checked). */
  build(prefix: string, ...args: PatternArgs<P>): string;
}

const PLACEHOLDER = /<([^>]*)>/g;

function placeholdersOf(pattern: string): Placeholder[] {
  return [...pattern.matchAll(PLACEHOLDER)].map(([, inner = '']) =>
    inner.includes('|') ? { name: inner, choices: inner.split('|') } : { name: inner, choices: null },
  );
}

/** The content of the first non-empty `{...}` of a pattern, or null. */
function slotTagOf(pattern: string): string | null {
  const tag = hashTag(pattern);
  return tag === pattern ? null : tag;
}

/** One argument checked against its placeholder. */
function filled(value: string, placeholder: Placeholder): string {
  if (placeholder.choices) {
    if (!placeholder.choices.includes(value)) {
      throw new TypeError(
        `<${placeholder.name}> takes one of ${placeholder.choices.join(', ')}, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  }
  if (value.length === 0 || /[{}]/.test(value)) {
    throw new TypeError(
      `${placeholder.name} must be non-empty and contain no braces, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Defines one key: its spec, and a builder that fills the pattern's placeholders in order. */
export function defineKey<const S extends KeySpec>(spec: S): S & KeyDefinition<S['pattern']> {
  type P = S['pattern'];
  const placeholders = placeholdersOf(spec.pattern);
  const literals = spec.pattern.split(PLACEHOLDER).filter((_, i) => i % 2 === 0);
  if (/[<>]/.test(literals.join(''))) throw new TypeError(`unbalanced placeholder in ${spec.pattern}`);
  return {
    ...spec,
    placeholders,
    slotTag: slotTagOf(spec.pattern),
    build(prefix: string, ...args: PatternArgs<P>): string {
      const values = args as unknown as string[];
      if (values.length !== placeholders.length) {
        throw new TypeError(`${spec.pattern} takes ${placeholders.length} arguments, got ${values.length}`);
      }
      const parts = placeholders.map((p, i) => filled(values[i] as string, p));
      return `${prefix}:${literals.map((text, i) => text + (parts[i] ?? '')).join('')}`;
    },
  };
}

/** The hash tag Redis Cluster hashes for a key: the content of the first non-empty `{...}`, or the key. */
export function hashTag(key: string): string {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  if (close === -1 || close === open + 1) return key;
  return key.slice(open + 1, close);
}
