// Imports the module given as its argument and prints the npm packages that loaded, name@version, as one
// JSON array (loadedPackages).
import { registerHooks } from 'node:module';
import { pathToFileURL } from 'node:url';

const loaded = new Set<string>();
registerHooks({
  load(url, context, nextLoad) {
    const pkg = /node_modules\/\.pnpm\/(?:[^/]+)\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
    const version = /node_modules\/\.pnpm\/(?:@[^+]+\+)?[^@/]+@([^_/]+)/.exec(url)?.[1];
    if (pkg) loaded.add(`${pkg}@${version}`);
    return nextLoad(url, context);
  },
});
await import(pathToFileURL(process.argv[2] as string).href);
console.log(JSON.stringify([...loaded].sort()));
