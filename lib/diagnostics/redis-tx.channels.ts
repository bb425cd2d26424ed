import { channel, type Channel } from 'node:diagnostics_channel';

/** Names of the `node:diagnostics_channel` channels this library publishes on. */
export const channelNames = {
  transactionStart: 'nestjs-redis-tx:transaction:start',
  transactionExec: 'nestjs-redis-tx:transaction:exec',
  transactionCommit: 'nestjs-redis-tx:transaction:commit',
  transactionConflict: 'nestjs-redis-tx:transaction:conflict',
  transactionRetry: 'nestjs-redis-tx:transaction:retry',
  transactionRollback: 'nestjs-redis-tx:transaction:rollback',
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
};
