/**
 * Which errors mean PostgreSQL is out of reach. Its own entry point (`@atoll/db/unavailable`), free of
 * kysely and pg, so a service without a database (the gateway) can map errors without loading them.
 */

/** True for errors that mean PostgreSQL cannot be reached or is going away (a 503, not a bug). */
export function isDatabaseUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (!e) return false;
  // 57P01-03: admin/crash shutdown, cannot connect now; 08xxx: connection exceptions.
  if (
    e.code &&
    (/^08/.test(e.code) || ['57P01', '57P02', '57P03', 'ECONNREFUSED', 'ECONNRESET'].includes(e.code))
  ) {
    return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|connect ECONNREFUSED/.test(
    e.message ?? '',
  );
}
