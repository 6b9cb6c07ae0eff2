export { testDatabase } from './database.ts';
export { loadedPackages, packageName } from './loaded-packages.ts';
export { type RawResponse, rawRequest, slowRequest } from './raw-http.ts';
export * from './servers.ts';
