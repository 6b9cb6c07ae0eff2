export { testDatabase } from './database.ts';
export { type RawResponse, rawRequest } from './raw-http.ts';
export * from './servers.ts';
