/**
 * Every Lua script of atoll, from the registry of `defineScript` (@atoll/redis): each one's keys, as
 * the real key builders make them, hash to one cluster slot — except the known exceptions, named here.
 * And nothing runs a script or a multi-key command another way: the source holds no `defineCommand`,
 * EVAL, bare MULTI or MGET outside @atoll/redis, whose helpers check the slots on every call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { registeredScripts, type ScriptDefinition } from '@atoll/redis';
import { createKeys, hashSlot, KEY_SPECS, type KeyDefinition, type KeyName } from '@atoll/redis-keys';
import { repoRoot } from '@atoll/testkit';
import { describe, expect, it } from 'vitest';
// Every module that defines scripts, so that the registry holds them all (the last test checks that).
import '../../apps/auth/src/security/count-failure.lua.ts';
import '../../apps/auth/src/security/issue-device.lua.ts';
import '../../apps/auth/src/verification/check-code.lua.ts';
import '../../apps/content/src/rankings/ranking.lua.ts';
import '../../apps/content/src/relations/relations.lua.ts';
import '../../apps/gateway/src/rate-limit/counter.ts';
import '../../apps/notifier/src/notifications/mail-caps.ts';
import '../../packages/cache/src/scripts.lua.ts';
import '../../packages/lock/src/scripts.ts';
import '../../packages/session-store/src/index.ts';

/**
 * The scripts known to touch keys of several slots (they assume one redis-session server or Sentinel
 * group, atoll's topology): the gateway's counters of a request's tiers, and its session read with the
 * counting, which also builds the user's counter key inside Lua. Both are being reworked for Redis
 * Cluster; a script that leaves this list must lose its `crossSlot` too.
 */
const KNOWN_CROSS_SLOT = ['rateLimitCountMany', 'resolveAndCount'];

const keys = createKeys('t');

/** The keys a builder makes for one id: one per combination of its choices' literals. */
function samples(name: KeyName, id: string): string[] {
  const definition = KEY_SPECS[name] as KeyDefinition;
  let argLists: string[][] = [[]];
  for (const p of definition.placeholders) {
    argLists = argLists.flatMap((args) => (p.choices ?? [id]).map((value) => [...args, value]));
  }
  const build = keys[name] as (...args: string[]) => string;
  return argLists.map((args) => build(...args));
}

const alternatives = (position: KeyName | readonly KeyName[]): readonly KeyName[] =>
  typeof position === 'string' ? [position] : position;

/**
 * The key lists a script can be called with, as far as the definitions tell: every combination of what
 * each KEYS position may be, the caller's id the same throughout (a script works on one caller's keys).
 * With `repeatKeys`, one call holds every key its position may be (a request's tiers, all at once).
 */
function callsOf(script: ScriptDefinition): string[][] {
  const options = script.keys.map((position) =>
    alternatives(position).flatMap((name) => samples(name, 'u1')),
  );
  if (script.repeatKeys) return [options[0] ?? []];
  return options.reduce<string[][]>(
    (calls, keysHere) => calls.flatMap((c) => keysHere.map((k) => [...c, k])),
    [[]],
  );
}

const oneSlot = (call: string[]) => new Set(call.map(hashSlot)).size <= 1;

/** The TypeScript sources of the apps and packages (tests and dependencies left out). */
function sources(): Array<{ path: string; text: string }> {
  const files: Array<{ path: string; text: string }> = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts'))
        files.push({ path: relative(repoRoot, path), text: readFileSync(path, 'utf8') });
    }
  };
  for (const group of ['apps', 'packages']) {
    for (const unit of readdirSync(join(repoRoot, group))) {
      const src = join(repoRoot, group, unit, 'src');
      try {
        walk(src);
      } catch {
        // a unit without sources
      }
    }
  }
  return files;
}

describe('Lua scripts and multi-key commands (the cluster slot rule)', () => {
  const scripts = registeredScripts();

  it('keeps the keys of every script in one slot, but for the known exceptions', () => {
    for (const script of scripts) {
      const calls = callsOf(script);
      expect(calls.length, script.name).toBeGreaterThan(0);
      if (KNOWN_CROSS_SLOT.includes(script.name)) {
        expect(script.crossSlot, `${script.name} is a known exception: it says why`).toBeTruthy();
        // Still an exception: if it stops being one, take it off the list and drop its `crossSlot`.
        expect(
          calls.some((call) => !oneSlot(call)),
          script.name,
        ).toBe(true);
      } else {
        expect(
          script.crossSlot,
          `${script.name} claims an exception that is not listed here`,
        ).toBeUndefined();
        for (const call of calls) expect(oneSlot(call), `${script.name}: ${call.join(' ')}`).toBe(true);
      }
    }
  });

  it('holds every script defined in the sources, and no script run any other way', () => {
    const files = sources();
    const defined = files.flatMap(({ text }) =>
      [...text.matchAll(/defineScript\b[^(]*\(\{[^}]*?name: '([^']+)'/gs)].map((m) => m[1]),
    );
    // The definitions as written in the sources are exactly the registry's.
    expect(defined.sort()).toEqual(scripts.map((s) => s.name).sort());
    expect(defined.length).toBeGreaterThanOrEqual(16);
    const elsewhere = files.filter(
      ({ path, text }) =>
        !path.startsWith(join('packages', 'redis', 'src')) &&
        /\.defineCommand\(|\.eval\(|\.evalsha\(|\.multi\(\)|\.mget\(/.test(text),
    );
    expect(elsewhere.map((f) => f.path)).toEqual([]);
  });
});
