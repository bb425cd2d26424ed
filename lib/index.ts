/**
 * `nestjs-redis-tx`: the module, transactions (`@Transactional`, `RedisTx`),
 * locks (`@Locked`, `LockService`), scheduled jobs claimed once per tick
 * (`@OncePerTick`, `CronTicksModule`), the diagnostics channels and the errors.
 *
 * @module nestjs-redis-tx
 */
export { RedisTxModule } from './module/redis-tx.module.js';
export { REDIS_CLIENT } from './module/redis-tx.constants.js';
export { InjectRedis } from './module/inject-redis.decorator.js';
export type {
  ClusterConnection,
  HttpOptions,
  RedisConnectionOption,
  RedisScript,
  RedisTxModuleAsyncOptions,
  RedisTxModuleFactoryOptions,
  RedisTxModuleOptions,
  TransactionDefaults,
} from './module/redis-tx.options.js';

export { RedisTx } from './transactions/redis-tx.service.js';
export { Transactional } from './transactions/transactional.decorator.js';
export type { CommitHook, RollbackHook } from './transactions/transaction.context.js';
export type {
  Propagation,
  TransactionOptions,
  TransactionResult,
  WatchKeys,
} from './transactions/transaction.options.js';

export { LockService } from './locks/lock.service.js';
export { Locked } from './locks/locked.decorator.js';
export type { Lock } from './locks/lock.js';
export type {
  ForceReleaseResult,
  LockHolderInfo,
  LockHoldMode,
  LockInspection,
  LockWaiterInfo,
} from './locks/admin/lock-inspection.js';
export type { LockHandle } from './locks/portable/lock-handle.js';
export type {
  LockDefaults,
  LockedOptions,
  LockKey,
  LockMode,
  LockOptions,
  LockUsingOptions,
  RedlockConnection,
  RedlockOptions,
} from './locks/lock.options.js';

export { OncePerTick } from './schedule/once-per-tick.decorator.js';
export { CronTicksModule } from './schedule/cron-ticks.module.js';
export { CronTicks, type CronTickRun } from './schedule/cron-ticks.service.js';
export type {
  CronRun,
  CronTicksModuleOptions,
  MisfirePolicy,
  OncePerTickOptions,
} from './schedule/cron-ticks.options.js';

export { channelNames } from './diagnostics/redis-tx.channels.js';
export type {
  LockAcquireEvent,
  LockLossEvent,
  LockReleaseEvent,
  LockRenewEvent,
  LockWaitEvent,
  TransactionCommitEvent,
  TransactionConflictEvent,
  TransactionExecEvent,
  TransactionRetryEvent,
  TransactionRollbackEvent,
  TransactionStartEvent,
} from './diagnostics/redis-tx.channels.js';
export { tracingChannelNames } from './diagnostics/redis-tx.tracing.js';
export type {
  LockAcquireTrace,
  LockHoldTrace,
  LockTraceMode,
  TransactionTrace,
  TransactionTraceOutcome,
} from './diagnostics/redis-tx.tracing.js';
export type { RedisClient } from './connection/redis-client.js';

export * from './errors/index.js';
export { RedisTxHttpException, type RedisTxHttpBody } from './http/redis-tx-http.exception.js';
export type { RedisTxHttpCode } from './errors/http-status.js';
