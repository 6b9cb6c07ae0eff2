// Writes the key map table of README.md from src/key-map.ts (the test of this package checks it).
import { readFileSync, writeFileSync } from 'node:fs';
import { withKeyMap } from '../src/readme.ts';

const path = new URL('../README.md', import.meta.url);
writeFileSync(path, withKeyMap(readFileSync(path, 'utf8')));
