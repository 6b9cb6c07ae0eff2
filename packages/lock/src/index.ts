export { advanceFence, FENCE_TABLE } from './fence.ts';
export { type ShortLease, tryLease } from './lease.ts';
export { type AcquireOptions, type Lease, LockClient } from './lock.ts';
