// `nestjs-redis-tx/terminus`: kept apart from the main entry so that apps
// without @nestjs/terminus (an optional peer dependency) never load it.
export { RedisTxHealthIndicator } from './redis-tx.health-indicator.js';
export type { RedisTxConnectionStates, RedisTxHealthOptions } from './redis-tx.health-indicator.js';
export { RedisTxHealthModule } from './redis-tx-health.module.js';
