// Imports the gateway's app module and prints the npm packages it loaded, name@version, one JSON array
// (loaded-packages.test.ts).
import { registerHooks } from 'node:module';

const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    const pkg = /node_modules\/\.pnpm\/(?:[^/]+)\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
    const version = /node_modules\/\.pnpm\/(?:@[^+]+\+)?[^@/]+@([^_/]+)/.exec(url)?.[1];
    if (pkg) loaded.add(`${pkg}@${version}`);
    return nextLoad(url, context);
  },
});
await import('../src/app.ts');
console.log(JSON.stringify([...loaded].sort()));
