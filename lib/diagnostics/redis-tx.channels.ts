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

/** `transaction:start`: an attempt begins (a `watch` transaction makes one per run of the method). */
export interface TransactionStartEvent {
  /** `Class.method`, or `RedisTx.run()`. */
  label: string;
  /** Counts from 1. */
  attempt: number;
  /** The watched keys; empty without `watch`. */
  watch: readonly string[];
}
/** `transaction:exec`: `EXEC` is being sent. */
export interface TransactionExecEvent {
  label: string;
  attempt: number;
  /** How many commands were queued. */
  commands: number;
}
/** `transaction:commit`: `EXEC` succeeded. */
export interface TransactionCommitEvent {
  label: string;
  attempts: number;
  commands: number;
  /** From the first attempt's start. */
  durationMs: number;
}
/** `transaction:conflict`: a watched key changed, or the `WATCH` was lost, before `EXEC`. */
export interface TransactionConflictEvent {
  label: string;
  attempt: number;
  /** Of this attempt. */
  durationMs: number;
}
/** `transaction:retry`: after a conflict, before the backoff. */
export interface TransactionRetryEvent {
  label: string;
  /** The attempt that conflicted. */
  attempt: number;
  /** The backoff before the next attempt. */
  delayMs: number;
}
/** `transaction:rollback`: it ended with nothing applied (the method threw, or the retries ran out). */
export interface TransactionRollbackEvent {
  label: string;
  attempts: number;
  durationMs: number;
  /** What the caller receives. */
  error: unknown;
}

/** `lock:acquire`: a lock is granted. */
export interface LockAcquireEvent {
  /** The lock's names, sorted, without `locks.keyPrefix`. */
  keys: readonly string[];
  mode: 'write' | 'read' | 'semaphore';
  /** One per key, in the order of `keys`. */
  fencingTokens: readonly number[];
  /** From the first attempt to the grant. */
  waitedMs: number;
  /** What made the last attempt: the first try, a release message naming this waiter, or the polling fallback. */
  wokenBy: 'first-try' | 'release' | 'poll';
}
/** `lock:wait`: an acquisition found the lock busy and starts waiting (once per acquisition). */
export interface LockWaitEvent {
  keys: readonly string[];
  mode: 'write' | 'read' | 'semaphore';
}
/** `lock:renew`: a renewal got through while the lease was valid. */
export interface LockRenewEvent {
  keys: readonly string[];
  /** The renewal's round trip. */
  durationMs: number;
}
/** `lock:loss`: the lease is lost, and the lock's `signal` aborts with `LockLostError`. */
export interface LockLossEvent {
  keys: readonly string[];
  /** The `LockLostError`'s message. */
  reason: string;
}
/** `lock:release`: the holder let the lock go (with `lockAtLeastFor`, cut its lease to the remainder). */
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
  /** For hot paths: test this first, so that not even the `build` closure is made when nobody listens. */
  get hasSubscribers(): boolean {
    return this.channel.hasSubscribers;
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
