// `nestjs-redis-tx/testing`: what an application's own tests need. Loaded
// only through this entry, never by the package's main one.
export { RedisTxTestingModule } from './redis-tx-testing.module.js';
export type { RedisTxTestingOptions } from './redis-tx-testing.options.js';
export { TestRedis } from './test-redis.js';
export { ThrowawayRedis, type ThrowawayRedisOptions } from './throwaway-redis.js';
export { expireLock } from './expire-lock.js';
export { LockProbe, expectLockedDuring } from './lock-probe.js';
export { RedisServerError } from './errors/redis-server.error.js';
export { NoRedisInTestError } from './errors/no-redis.error.js';
export { LockExpectationError } from './errors/lock-expectation.error.js';
