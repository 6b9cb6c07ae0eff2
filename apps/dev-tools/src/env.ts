/** A positive integer from the environment, or the default. */
export function envPort(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0) {
    console.error(`${name} must be a positive integer (got '${raw}')`);
    process.exit(1);
  }
  return value;
}

/** Runs `stop` on SIGTERM or SIGINT (a container's stop), once. */
export function onStop(stop: () => void): void {
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
