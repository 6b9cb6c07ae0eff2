export {
  AUDIT_DEFAULTS,
  type AuditOptions,
  type AuditReport,
  auditKeySpace,
  checkKey,
  type FamilyReport,
  type InstanceReport,
  UNKNOWN_FAMILY,
  VIOLATION_KINDS,
  type Violation,
  type ViolationKind,
  violationTotal,
} from './audit.ts';
export { formatAuditReport, formatBytes } from './audit-format.ts';
export {
  addressOf,
  type ClientUse,
  closeRedis,
  connectRedis,
  createRedisClient,
  infoFields,
  isRedisUnavailable,
  type Log,
  pingRedis,
  type RedisClientOptions,
  type RoleCheckedRedis,
  readSettings,
  verifyRole,
} from './client.ts';
export { checkRole, RedisRoleError, type RoleProblem, type ServerSettings } from './roles.ts';
