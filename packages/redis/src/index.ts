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
  type ClientUse,
  closeRedis,
  connectRedis,
  createRedisClient,
  type GroupNode,
  infoFields,
  isRedisUnavailable,
  type Log,
  pingRedis,
  REPLICA_ACK_TIMEOUT_MS,
  type RedisClientOptions,
  ReplicaAckError,
  type RoleCheckedRedis,
  readSettings,
  replicasToAck,
  sentinelGroupNodes,
  verifyRole,
  verifySentinelGroup,
  waitForReplicas,
} from './client.ts';
export { mgetAcrossSlots, oneSlotMulti } from './multi-key.ts';
export { checkRole, RedisRoleError, type RoleProblem, type ServerSettings } from './roles.ts';
export {
  defineScript,
  registeredScripts,
  type Script,
  type ScriptArg,
  type ScriptDefinition,
} from './script.ts';
export {
  addressOf,
  isSentinelUrl,
  parseRedisUrl,
  type RedisTarget,
  RedisUrlError,
  SENTINEL_URL_FORM,
  type SentinelTarget,
  sentinelOptions,
} from './url.ts';
