/**
 * `nestjs-redis-tx/terminus`: a `@nestjs/terminus` health indicator for the
 * module's connections. Kept apart from the main entry so that apps without
 * `@nestjs/terminus` (an optional peer dependency) never load it.
 *
 * @module nestjs-redis-tx/terminus
 */
export { RedisTxHealthIndicator } from './redis-tx.health-indicator.js';
export type { RedisTxConnectionStates, RedisTxHealthOptions } from './redis-tx.health-indicator.js';
export type {
  RedisTxLockAgeDetails,
  RedisTxLockAgeOptions,
  RedisTxOverdueLock,
} from './lock-age.options.js';
export { RedisTxHealthModule } from './redis-tx-health.module.js';
