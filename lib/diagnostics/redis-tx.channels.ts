import { channel, type Channel } from 'node:diagnostics_channel';

/** Names of the `node:diagnostics_channel` channels this library publishes on. */
export const channelNames = {
  transactionStart: 'nestjs-redis-tx:transaction:start',
  transactionExec: 'nestjs-redis-tx:transaction:exec',
  transactionCommit: 'nestjs-redis-tx:transaction:commit',
  transactionConflict: 'nestjs-redis-tx:transaction:conflict',
  transactionRetry: 'nestjs-redis-tx:transaction:retry',
  transactionRollback: 'nestjs-redis-tx:transaction:rollback',
  lockAcquire: 'nestjs-redis-tx:lock:acquire',
  lockWait: 'nestjs-redis-tx:lock:wait',
  lockRenew: 'nestjs-redis-tx:lock:renew',
  lockLoss: 'nestjs-redis-tx:lock:loss',
  lockRelease: 'nestjs-redis-tx:lock:release',
} as const;

export interface TransactionStartEvent {
  label: string;
  attempt: number;
  watch: readonly string[];
}
export interface TransactionExecEvent {
  label: string;
  attempt: number;
  commands: number;
}
export interface TransactionCommitEvent {
  label: string;
  attempts: number;
  commands: number;
  durationMs: number;
}
export interface TransactionConflictEvent {
  label: string;
  attempt: number;
  durationMs: number;
}
export interface TransactionRetryEvent {
  label: string;
  attempt: number;
  delayMs: number;
}
export interface TransactionRollbackEvent {
  label: string;
  attempts: number;
  durationMs: number;
  error: unknown;
}

export interface LockAcquireEvent {
  keys: readonly string[];
  mode: string;
  fencingTokens: readonly number[];
  /** From the first attempt to the grant. */
  waitedMs: number;
  /** What made the last attempt: the first try, a release message naming this waiter, or the polling fallback. */
  wokenBy: 'first-try' | 'release' | 'poll';
}
export interface LockWaitEvent {
  keys: readonly string[];
  mode: string;
}
export interface LockRenewEvent {
  keys: readonly string[];
  durationMs: number;
}
export interface LockLossEvent {
  keys: readonly string[];
  reason: string;
}
export interface LockReleaseEvent {
  keys: readonly string[];
  heldMs: number;
  /** False when the lease had already ended and another holder may own the key. */
  released: boolean;
}

/**
 * Node keeps one channel per name in a process, so both builds of the
 * package (ES module and CommonJS) publish on the same channels, and a
 * subscriber sees every event whichever build raised it.
 */
class TypedChannel<Message extends object> {
  private readonly channel: Channel;
  constructor(name: string) {
    this.channel = channel(name);
  }
  /** Builds the message only when someone listens, so an unobserved app pays nothing. */
  publish(build: () => Message): void {
    if (this.channel.hasSubscribers) this.channel.publish(build());
  }
}

export const channels = {
  transactionStart: new TypedChannel<TransactionStartEvent>(channelNames.transactionStart),
  transactionExec: new TypedChannel<TransactionExecEvent>(channelNames.transactionExec),
  transactionCommit: new TypedChannel<TransactionCommitEvent>(channelNames.transactionCommit),
  transactionConflict: new TypedChannel<TransactionConflictEvent>(channelNames.transactionConflict),
  transactionRetry: new TypedChannel<TransactionRetryEvent>(channelNames.transactionRetry),
  transactionRollback: new TypedChannel<TransactionRollbackEvent>(channelNames.transactionRollback),
  lockAcquire: new TypedChannel<LockAcquireEvent>(channelNames.lockAcquire),
  lockWait: new TypedChannel<LockWaitEvent>(channelNames.lockWait),
  lockRenew: new TypedChannel<LockRenewEvent>(channelNames.lockRenew),
  lockLoss: new TypedChannel<LockLossEvent>(channelNames.lockLoss),
  lockRelease: new TypedChannel<LockReleaseEvent>(channelNames.lockRelease),
};
