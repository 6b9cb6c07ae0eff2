/**
 * What a username may look like beyond its length: checked on the NFC form (the form it is stored in),
 * so that one name cannot be written two ways.
 *
 * - no whitespace, no `/ \ ? # %` (the name is a path segment in /api/profiles/:username), no controls;
 * - nothing invisible: no default-ignorable code points (zero-width spaces and joiners, soft hyphens,
 *   variation selectors…) and no bidi controls, which make two different names look the same;
 * - not made of dots only and no `..` (the name is a path segment);
 * - one script: `paypal` with a Cyrillic `а` is another name that looks the same. Digits, `_ - .` and
 *   other characters common to all scripts (Script=Common or Inherited) go with any script. Japanese
 *   (Han with Hiragana and Katakana), Chinese with Bopomofo and Korean with Han, each also with Latin,
 *   count as one, as in Unicode's "highly restrictive" level (UTS #39, 5.2).
 */

const FORBIDDEN = /[\s/\\?#%\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}\p{Bidi_Control}]/u;

const SCRIPTS = [
  'Latin',
  'Greek',
  'Cyrillic',
  'Armenian',
  'Hebrew',
  'Arabic',
  'Syriac',
  'Thaana',
  'Nko',
  'Devanagari',
  'Bengali',
  'Gurmukhi',
  'Gujarati',
  'Oriya',
  'Tamil',
  'Telugu',
  'Kannada',
  'Malayalam',
  'Sinhala',
  'Thai',
  'Lao',
  'Tibetan',
  'Myanmar',
  'Georgian',
  'Hangul',
  'Ethiopic',
  'Cherokee',
  'Canadian_Aboriginal',
  'Mongolian',
  'Khmer',
  'Han',
  'Hiragana',
  'Katakana',
  'Bopomofo',
  'Yi',
  'Tifinagh',
  'Coptic',
  'Runic',
  'Ogham',
] as const;

const SCRIPT_OF = SCRIPTS.map((name) => [name, new RegExp(`\\p{Script=${name}}`, 'u')] as const);
const NEUTRAL = /[\p{Script=Common}\p{Script=Inherited}]/u;

/** Sets of scripts that may be mixed; anything else must be one script. */
const COMBINATIONS: ReadonlyArray<ReadonlySet<string>> = [
  new Set(['Latin', 'Han', 'Hiragana', 'Katakana']),
  new Set(['Latin', 'Han', 'Bopomofo']),
  new Set(['Latin', 'Han', 'Hangul']),
];

function scriptsOf(value: string): Set<string> {
  const scripts = new Set<string>();
  for (const char of value) {
    if (NEUTRAL.test(char)) continue;
    scripts.add(SCRIPT_OF.find(([, pattern]) => pattern.test(char))?.[0] ?? `other:${char}`);
  }
  return scripts;
}

function oneScript(value: string): boolean {
  const scripts = scriptsOf(value);
  if (scripts.size <= 1) return true;
  return COMBINATIONS.some((allowed) => [...scripts].every((script) => allowed.has(script)));
}

/** The form a username is checked and stored in. */
export const normalUsername = (value: string) => value.trim().normalize('NFC');

/** Whether a (non-blank) username is acceptable; checks its normal form. */
export function validUsername(value: string): boolean {
  const name = normalUsername(value);
  if (FORBIDDEN.test(name)) return false;
  if (/^\.+$/.test(name) || name.includes('..')) return false;
  return oneScript(name);
}
