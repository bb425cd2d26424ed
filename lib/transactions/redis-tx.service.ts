import { Injectable } from '@nestjs/common';
import type { ChainableCommander } from 'ioredis';
import { RedisConnections } from '../connection/redis-connections.js';
import type { RedisClient } from '../connection/redis-client.js';
import type { CommitHook, RollbackHook } from './transaction.context.js';
import type { TransactionOptions, TransactionResult } from './transaction.options.js';
import { checkTransactionOptions } from './transaction-options.validator.js';
import { TransactionRunner } from './transaction.runner.js';

/** The default options of `RedisTx.run`: valid, so not checked again on every call. */
const noOptions: TransactionOptions = Object.freeze({});
const noArgs: readonly unknown[] = Object.freeze([]);

/** Transactions for the current async call chain; inject it where `@Transactional` methods queue commands. */
@Injectable()
export class RedisTx {
  /** Created by Nest's dependency injection: inject the class, never construct it. @internal */
  constructor(
    private readonly runner: TransactionRunner,
    private readonly connections: RedisConnections,
  ) {}

  /** The current transaction's command queue (chainable; replies come after EXEC). Throws NoActiveTransactionError outside one. */
  get multi(): ChainableCommander {
    return this.runner.requireCurrent('RedisTx.multi').queue.chain;
  }

  /** Runs commands now: in a WATCH transaction on the connection holding the WATCH, elsewhere on the shared client. */
  get client(): RedisClient {
    return this.runner.current?.client ?? this.connections.shared;
  }

  /** Whether the current call chain is inside a transaction. */
  get active(): boolean {
    return this.runner.current !== undefined;
  }

  /** Runs `hook(replies)` after the outermost transaction has committed; a failing hook is logged, never rethrown. */
  afterCommit(hook: CommitHook): void {
    this.runner.requireCurrent('RedisTx.afterCommit').addCommitHook(hook);
  }

  /** Runs `hook(error)` after the outermost transaction ends without applying anything. */
  afterRollback(hook: RollbackHook): void {
    this.runner.requireCurrent('RedisTx.afterRollback').addRollbackHook(hook);
  }

  /** `@Transactional` without a decorator; resolves to the callback's value and EXEC's replies. */
  run<T>(
    fn: () => T | Promise<T>,
    options: TransactionOptions = noOptions,
  ): Promise<TransactionResult<T>> {
    // Not an async function: the runner's promise is returned as it is,
    // without the turns an async wrapper adds; a bad option still rejects.
    if (options !== noOptions) {
      try {
        checkTransactionOptions(options, 'RedisTx.run()');
      } catch (error) {
        return Promise.reject(error as Error);
      }
    }
    return this.runner.execute(fn, options, noArgs, 'RedisTx.run()');
  }
}
