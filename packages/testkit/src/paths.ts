import { fileURLToPath } from 'node:url';

/** The repository root, found from this file (packages/testkit/src). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** The role configuration that every environment uses. */
export const redisConf = (role: 'cache' | 'session' | 'queue') => `${repoRoot}deploy/redis/${role}.conf`;
