import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { RedisTxExplorer } from '../binding/redis-tx.explorer.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { RedisTxHttpInterceptor } from '../http/redis-tx-http.interceptor.js';
import { LOCK_STORE } from '../locks/lock-store.js';
import { LockService } from '../locks/lock.service.js';
import { REDIS_TX_OPTIONS } from '../module/redis-tx.constants.js';
import { RedisTxModule } from '../module/redis-tx.module.js';
import { resolveModuleOptions } from '../module/redis-tx.options-validator.js';
import type { RedisTxModuleOptions } from '../module/redis-tx.options.js';
import { messages } from '../redis-tx.messages.js';
import { RedisTx } from '../transactions/redis-tx.service.js';
import { TransactionRunner } from '../transactions/transaction.runner.js';
import { InMemoryLocks } from './in-memory-locks.js';
import { resolveTestingOptions, type RedisTxTestingOptions } from './redis-tx-testing.options.js';
import { TestRedis } from './test-redis.js';
import { RedisTxWithoutRedis, transactionsWithoutRedis } from './without-redis.js';

/** Never dialled: an application without Redis has no connections. */
const NO_CONNECTION = 'redis://no-redis.invalid';

/**
 * RedisTxModule for tests. Import it in place of `RedisTxModule.forRoot()`:
 *
 * - `RedisTxTestingModule.forRoot()`: a throwaway redis-server of the
 *   application's own, on a free loopback port, stopped by its pid at
 *   `app.close()`. Each application (so each test file) is isolated.
 * - `forRoot({ redis: 'redis://…' })`: that server, in a database of the
 *   test file's own (see `db`), emptied when the application starts.
 * - `forRoot({ lockStore: 'in-memory' })`: no Redis at all; locks work in
 *   memory with the same semantics, and transactions throw NoRedisInTestError.
 *   With `redis` as well, transactions use that Redis and locks stay in memory.
 *
 * It provides what RedisTxModule provides (LockService, RedisTx, and with
 * Redis the client), global by default, plus {@link TestRedis}.
 */
@Module({})
export class RedisTxTestingModule {
  static forRoot(options: RedisTxTestingOptions = {}): DynamicModule {
    const { target, inMemoryLocks, module } = resolveTestingOptions(options);
    const testRedis: Provider = {
      provide: TestRedis,
      useFactory: () => TestRedis.prepare(target),
    };
    if (target.kind === 'none') return withoutRedis(module, testRedis);
    const { isGlobal, ...factoryOptions } = module;
    const base = RedisTxModule.forRootAsync({
      isGlobal,
      inject: [TestRedis],
      useFactory: (redis: TestRedis) => ({ ...factoryOptions, connection: redis.url! }),
    });
    const lockStore: Provider[] = inMemoryLocks
      ? [{ provide: LOCK_STORE, useClass: InMemoryLocks }]
      : [];
    return {
      ...base,
      // In the same module as the options that depend on it, so that Nest
      // shuts it down (the server stops) after the connections are closed.
      providers: [
        ...(base.providers ?? []).filter((p) => !(inMemoryLocks && providesLockStore(p))),
        testRedis,
        ...lockStore,
      ],
      exports: [...(base.exports ?? []), TestRedis],
    };
  }
}

/** Locks in memory and nothing else: no connection is made, and transactions are refused. */
function withoutRedis(
  module: Omit<RedisTxModuleOptions, 'connection'>,
  testRedis: Provider,
): DynamicModule {
  const { isGlobal, ...rest } = module;
  if (isGlobal !== undefined && typeof isGlobal !== 'boolean') {
    throw new InvalidOptionsError(
      'isGlobal',
      messages.optionInvalid('isGlobal', 'true or false', isGlobal),
    );
  }
  const resolved = resolveModuleOptions({ ...rest, connection: NO_CONNECTION }, 'factory');
  return {
    module: RedisTxTestingModule,
    global: isGlobal ?? true,
    imports: [DiscoveryModule],
    providers: [
      { provide: REDIS_TX_OPTIONS, useValue: resolved },
      { provide: LOCK_STORE, useClass: InMemoryLocks },
      LockService,
      { provide: TransactionRunner, useValue: transactionsWithoutRedis },
      // A factory: as a class it would inherit RedisTx's constructor parameters for injection.
      { provide: RedisTx, useFactory: () => new RedisTxWithoutRedis() },
      testRedis,
      RedisTxExplorer,
      { provide: APP_INTERCEPTOR, useClass: RedisTxHttpInterceptor },
    ],
    exports: [RedisTx, LockService, TestRedis],
  };
}

function providesLockStore(provider: Provider): boolean {
  return typeof provider === 'object' && 'provide' in provider && provider.provide === LOCK_STORE;
}
