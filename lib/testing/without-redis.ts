import type { ChainableCommander } from 'ioredis';
import type { RedisClient } from '../connection/redis-client.js';
import { messages } from '../redis-tx.messages.js';
import type { TransactionContext } from '../transactions/transaction.context.js';
import type { TransactionResult } from '../transactions/transaction.options.js';
import { RedisTx } from '../transactions/redis-tx.service.js';
import { NoRedisInTestError } from './errors/no-redis.error.js';

const refuse = (what: string): never => {
  throw new NoRedisInTestError(messages.testingNoRedis(what));
};

/**
 * What `@Transactional` methods reach in an application tested without
 * Redis: every transaction is refused with NoRedisInTestError, naming the
 * method, before the method runs.
 */
export const transactionsWithoutRedis = {
  current: undefined as TransactionContext | undefined,
  requireCurrent: (what: string): TransactionContext => refuse(what),
  execute: (
    _fn: () => unknown,
    _options: unknown,
    _args: readonly unknown[],
    label: string,
  ): Promise<never> => Promise.reject(new NoRedisInTestError(messages.testingNoRedis(label))),
};

/** `RedisTx` in an application tested without Redis: outside a transaction as always, and refusing to start one. */
export class RedisTxWithoutRedis extends RedisTx {
  constructor() {
    // No runner and no connections: every member that would use them is replaced below.
    super(undefined as never, undefined as never);
  }

  override get multi(): ChainableCommander {
    return refuse('RedisTx.multi');
  }

  override get client(): RedisClient {
    return refuse('RedisTx.client');
  }

  override get active(): boolean {
    return false;
  }

  override afterCommit(): void {
    refuse('RedisTx.afterCommit');
  }

  override afterRollback(): void {
    refuse('RedisTx.afterRollback');
  }

  override run<T>(): Promise<TransactionResult<T>> {
    return Promise.reject(new NoRedisInTestError(messages.testingNoRedis('RedisTx.run()')));
  }
}
