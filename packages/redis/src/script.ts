/**
 * `defineScript`: the one way atoll runs a Lua script. A script is defined once, at module level, with
 * its Lua source, the key-map names of its KEYS and the types of its arguments and result; then
 * `script.run(redis, keys, ...args)` runs it on any client:
 *
 * - it is registered on each client once (ioredis `defineCommand`: EVALSHA, falling back to EVAL when
 *   the server does not know the script yet, e.g. after a restart or a failover);
 * - before every call, the keys are checked to hash to one cluster slot (`assertOneSlot`), so a script
 *   that could not run on Redis Cluster fails in the first test that calls it, not on the day atoll
 *   moves to a cluster. A script known to break that rule says why in `crossSlot` and is not checked;
 *   the registry test lists those exceptions by name;
 * - every script defined is kept in a registry (`registeredScripts`), which the tests walk to check each
 *   one's keys, as the real builders make them, against that rule.
 */
import { assertOneSlot, type KeyName } from '@atoll/redis-keys';
import { type ChainableCommander, Redis } from 'ioredis';
import type { RedisClient } from './client.ts';

export type ScriptArg = string | number;

export interface ScriptDefinition {
  /** The command it becomes on each client; unique across atoll. */
  readonly name: string;
  readonly lua: string;
  /**
   * What KEYS[1], KEYS[2]… are, as key-map names: one entry per key, each the one key it may be or the
   * list of those it may be. With `repeatKeys`, KEYS holds any number (at least one) of the first entry.
   */
  readonly keys: readonly (KeyName | readonly KeyName[])[];
  readonly repeatKeys?: true;
  /** Only for a script known to touch keys of several slots: why, and what is to fix it. */
  readonly crossSlot?: string;
}

/** A defined script: run it on a client, or queue it on a pipeline of a client it is registered on. */
export interface Script<Args extends readonly ScriptArg[], Result> extends ScriptDefinition {
  run(redis: RedisClient, keys: readonly string[], ...args: Args): Promise<Result>;
  /** Registers the script on `redis`, so that pipelines created from it afterwards can `queue` it. */
  register(redis: RedisClient): void;
  queue(pipeline: ChainableCommander, keys: readonly string[], ...args: Args): void;
}

type Command = (...keysThenArgs: ScriptArg[]) => unknown;

const registry = new Map<string, { def: ScriptDefinition; register: (redis: RedisClient) => void }>();

/** Every script defined so far (each module defines its scripts when it is loaded). */
export function registeredScripts(): ScriptDefinition[] {
  return [...registry.values()].map((entry) => entry.def);
}

/**
 * Per client, the scripts defined on it. ioredis's auto-pipelining copies a client's scripts into a
 * pipeline when it opens one, and a pipeline can wait behind a running one for a whole round trip: a
 * script defined on a client that has already sent commands could join a pipeline opened before, which
 * lacks it, and that pipeline then fails with an uncaught error (ioredis #1931). So every client gets every
 * script defined so far before it sends anything (`defineScriptsOn`, from createRedisClient), and a script
 * defined on a client later is never auto-pipelined on it (`autoPipeliningIgnoredCommands`).
 */
const definedOn = new WeakMap<RedisClient, Set<string>>();

function defineOn(redis: RedisClient, name: string, register: (redis: RedisClient) => void, late: boolean) {
  let names = definedOn.get(redis);
  if (!names) {
    names = new Set();
    definedOn.set(redis, names);
  }
  if (names.has(name)) return;
  names.add(name);
  const options = redis.options as { autoPipeliningIgnoredCommands?: string[] };
  // A new array: ioredis's default one is shared by every client.
  if (late && !(options.autoPipeliningIgnoredCommands ?? []).includes(name))
    options.autoPipeliningIgnoredCommands = [...(options.autoPipeliningIgnoredCommands ?? []), name];
  register(redis);
}

/** Defines every script defined so far on a new client, before it sends any command. */
export function defineScriptsOn(redis: RedisClient): void {
  for (const { def, register } of registry.values()) defineOn(redis, def.name, register, false);
}

/** Thrown when a script is called with a number of keys its definition does not allow. */
function checkKeyCount(def: ScriptDefinition, keys: readonly string[]): void {
  const ok = def.repeatKeys ? keys.length >= 1 : keys.length === def.keys.length;
  if (!ok) {
    const wanted = def.repeatKeys ? 'at least 1' : String(def.keys.length);
    throw new TypeError(`script ${def.name} takes ${wanted} keys, got ${keys.length}`);
  }
}

/** The keys a call passes, checked: how many, and (unless it is a known exception) one slot. */
function checkedKeys(def: ScriptDefinition, keys: readonly string[]): readonly string[] {
  checkKeyCount(def, keys);
  return def.crossSlot ? keys : assertOneSlot(`script ${def.name}`, keys);
}

/** The script's command on a client or pipeline, if it is registered there. */
function commandOn(target: RedisClient | ChainableCommander, name: string): Command | undefined {
  const command = (target as unknown as Record<string, unknown>)[name];
  return typeof command === 'function' ? (command as Command).bind(target) : undefined;
}

export function defineScript<Args extends readonly ScriptArg[], Result>(
  def: ScriptDefinition,
): Script<Args, Result> {
  // The script becomes a method of the client: it must not shadow one of ioredis's (`get`, `set`…).
  if (def.name in Redis.prototype) throw new Error(`script name ${def.name} is taken by an ioredis method`);
  const known = registry.get(def.name)?.def;
  if (known && known.lua !== def.lua) throw new Error(`two different scripts are named ${def.name}`);
  // A script with a fixed number of keys is registered with it, so its first argument is its first key:
  // ioredis's cluster auto-pipelining routes a command by its first argument, which must be a key (with
  // the count first, every call would be routed by the slot of "1"). Only a `repeatKeys` script takes the
  // count first.
  const numberOfKeys = def.repeatKeys ? undefined : def.keys.length;
  const register = (redis: RedisClient) => {
    if (!commandOn(redis, def.name))
      redis.defineCommand(
        def.name,
        numberOfKeys === undefined ? { lua: def.lua } : { numberOfKeys, lua: def.lua },
      );
  };
  registry.set(def.name, { def, register });
  const commandArgs = (keys: readonly string[], args: readonly ScriptArg[]): ScriptArg[] =>
    numberOfKeys === undefined ? [keys.length, ...keys, ...args] : [...keys, ...args];
  return {
    ...def,
    register,
    async run(redis, keys, ...args) {
      const checked = checkedKeys(def, keys);
      // Known on this client already (the usual case): nothing to look up.
      if (!definedOn.get(redis)?.has(def.name))
        defineOn(redis, def.name, register, !commandOn(redis, def.name));
      const command = commandOn(redis, def.name) as Command;
      return (await command(...commandArgs(checked, args))) as Result;
    },
    queue(pipeline, keys, ...args) {
      const checked = checkedKeys(def, keys);
      const command = commandOn(pipeline, def.name);
      if (!command) {
        throw new Error(
          `script ${def.name} is not registered on the pipeline's client: call register() first`,
        );
      }
      command(...commandArgs(checked, args));
    },
  };
}
