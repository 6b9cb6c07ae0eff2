export {
  addressOf,
  type ClientUse,
  closeRedis,
  connectRedis,
  createRedisClient,
  isRedisUnavailable,
  type Log,
  pingRedis,
  type RedisClientOptions,
  type RoleCheckedRedis,
  readSettings,
  verifyRole,
} from './client.ts';
export { checkRole, RedisRoleError, type RoleProblem, type ServerSettings } from './roles.ts';
