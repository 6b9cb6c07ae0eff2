/**
 * The key map table of the README, rendered from the definitions. The README holds it between two
 * markers; this package's test fails when it differs from what the definitions render, and
 * `pnpm --filter @atoll/redis-keys readme` writes it anew (scripts/write-readme.ts).
 */
import type { KeySpec } from './define.ts';
import { KEY_DEFINITIONS } from './key-map.ts';

export const KEY_MAP_START =
  '<!-- key-map:start (generated from src/key-map.ts: pnpm --filter @atoll/redis-keys readme) -->';
export const KEY_MAP_END = '<!-- key-map:end -->';

/** Markdown inline code that survives the table: a pipe inside a cell must be escaped. */
const cell = (text: string) => text.replaceAll('|', '\\|');

function ttlCell(spec: KeySpec): string {
  const source =
    spec.ttlMs !== undefined ? ` (ttlMs ${spec.ttlMs})` : spec.ttlSetting ? ` (${spec.ttlSetting})` : '';
  return cell(spec.ttl + source);
}

function usersCell(spec: KeySpec): string {
  const users = Object.entries(spec.users).map(([service, access]) => `${service} ${access}`);
  return users.length > 0 ? users.join(', ') : 'per queue (QUEUE_USERS)';
}

/** The key map as a Markdown table: one row per definition, in the order of key-map.ts. */
export function keyMapTable(): string {
  const rows = Object.entries(KEY_DEFINITIONS).map(([name, definition]) => {
    const spec = definition as KeySpec;
    return `| \`${name}\` | \`${cell(`<p>:${spec.pattern}`)}\` | ${spec.instance} | ${spec.type} | ${ttlCell(spec)} | ${usersCell(spec)} | ${cell(spec.holds)} |`;
  });
  return [
    '| builder | key | instance | type | TTL | users | holds |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/** `readme` with its key map region replaced by the rendered table. */
export function withKeyMap(readme: string): string {
  const start = readme.indexOf(KEY_MAP_START);
  const end = readme.indexOf(KEY_MAP_END);
  if (start === -1 || end < start) throw new Error('the README has no key map markers');
  return `${readme.slice(0, start + KEY_MAP_START.length)}\n${keyMapTable()}\n${readme.slice(end)}`;
}
