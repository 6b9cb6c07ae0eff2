export { testDatabase } from './database.ts';
export * from './servers.ts';
