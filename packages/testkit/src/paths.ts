import { fileURLToPath } from 'node:url';

/** The repository root, found from this file (packages/testkit/src). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The role configuration that every environment uses. */
export const redisConf = (role: 'cache' | 'session' | 'queue') => `${repoRoot}deploy/redis/${role}.conf`;

/**
 * The mode of a folder only its user may read: 0700, except as root, where the embedded PostgreSQL runs
 * as the `postgres` user and must pass through to its cluster (0711: no listing, no reading).
 */
export const privateDirMode = () => (process.getuid?.() === 0 ? 0o711 : 0o700);
