import { inject } from 'vitest';
import { createDatabase, type TestDatabase } from './postgres.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser URL on the run's PostgreSQL, provided by global-setup.ts. */
    adminDatabaseUrl: string;
  }
}

/** A fresh database for one test file, on the run's PostgreSQL (see global-setup.ts). */
export function testDatabase(label = 'test'): Promise<TestDatabase> {
  return createDatabase(inject('adminDatabaseUrl'), label);
}
