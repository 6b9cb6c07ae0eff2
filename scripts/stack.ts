/**
 * The local stack: `npm start`. Brings the whole of atoll up on this machine (see
 * packages/testkit/src/stack.ts), prints a line per component as it becomes ready and the gateway URL,
 * and stops everything cleanly on Ctrl-C. Data (Redis files, the embedded PostgreSQL cluster, logs) stays
 * in .atoll/data, so the next start continues where this one stopped.
 *
 * Environment: PORT (gateway, default 3000), HOST (default 127.0.0.1), DATABASE_URL (use this
 * PostgreSQL instead of the embedded one), SMTP_URL (send mail through this server instead of the local
 * sink, which logs every email to .atoll/data/logs/mail.log), ADMIN_EMAILS, ATOLL_DATA_DIR,
 * IDENTITY_SECRET, LOG_LEVEL.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Stack, startStack } from '@atoll/testkit/servers';

const root = resolve(import.meta.dirname, '..');
const dataDir = resolve(process.env.ATOLL_DATA_DIR ?? join(root, '.atoll', 'data'));
mkdirSync(dataDir, { recursive: true });

// A development identity key, made once and kept with the data, unless one is given.
const secretFile = join(dataDir, 'identity-secret');
if (!process.env.IDENTITY_SECRET && !existsSync(secretFile))
  writeFileSync(secretFile, randomBytes(32).toString('hex'));
const identitySecret = process.env.IDENTITY_SECRET ?? readFileSync(secretFile, 'utf8').trim();

const log = (line: string) => console.log(`atoll: ${line}`);
let stack: Stack | undefined;
let stopping = false;

async function shutdown(code: number) {
  if (stopping) return;
  stopping = true;
  log('stopping…');
  await stack?.stop();
  log('stopped');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  log(`data in ${dataDir}`);
  stack = await startStack({
    dataDir,
    ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
    ...(process.env.SMTP_URL ? { smtpUrl: process.env.SMTP_URL } : {}),
    gatewayPort: Number(process.env.PORT ?? 3000),
    gatewayHost: process.env.HOST ?? '127.0.0.1',
    identitySecret,
    env: {
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      ...(process.env.ADMIN_EMAILS ? { ADMIN_EMAILS: process.env.ADMIN_EMAILS } : {}),
    },
    onReady: log,
  });
  log(`atoll is up: ${stack.gatewayUrl} (Ctrl-C stops everything)`);
  // A service that dies takes the stack down with it, loudly: nothing half-running.
  for (const proc of Object.values(stack.services)) {
    proc.exited.then(({ code, signal }) => {
      if (stopping) return;
      log(`${proc.name} exited (${signal ?? code}): ${proc.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      void shutdown(1);
    });
  }
} catch (err) {
  log(`could not start: ${(err as Error).message}`);
  await shutdown(1);
}
