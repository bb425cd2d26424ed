import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { APP_INTERCEPTOR, DiscoveryModule } from '@nestjs/core';
import { RedisTxExplorer } from '../binding/redis-tx.explorer.js';
import { RedisConnections } from '../connection/redis-connections.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { RedisTxHttpInterceptor } from '../http/redis-tx-http.interceptor.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import { LOCK_STORE } from '../locks/lock-store.js';
import { LockService } from '../locks/lock.service.js';
import { NodeLocks } from '../locks/node-locks.js';
import { RedlockLocks } from '../locks/redlock/redlock.locks.js';
import { RedlockNodes } from '../locks/redlock/redlock.nodes.js';
import { RedisTx } from '../transactions/redis-tx.service.js';
import { TransactionRunner } from '../transactions/transaction.runner.js';
import { REDIS_CLIENT, REDIS_TX_OPTIONS } from './redis-tx.constants.js';
import type { RedisTxModuleAsyncOptions, RedisTxModuleOptions } from './redis-tx.options.js';
import { resolveModuleOptions } from './redis-tx.options-validator.js';

const asyncKeys = optionKeys<RedisTxModuleAsyncOptions>({
  imports: true,
  isGlobal: true,
  inject: true,
  useFactory: true,
});

@Module({})
export class RedisTxModule {
  /** Configures the module with options known up front; invalid options throw here, at bootstrap. */
  static forRoot(options: RedisTxModuleOptions): DynamicModule {
    const resolved = resolveModuleOptions(options);
    return this.assemble(options.isGlobal, [], { provide: REDIS_TX_OPTIONS, useValue: resolved });
  }

  /** Configures the module from other providers (ConfigService…); options are checked when the factory resolves. */
  static forRootAsync(options: RedisTxModuleAsyncOptions): DynamicModule {
    if (typeof options === 'object' && options !== null) {
      refuseUnknownKeys(options, asyncKeys, 'RedisTxModule.forRootAsync()');
    }
    if (typeof options?.useFactory !== 'function') {
      throw new InvalidOptionsError(
        'useFactory',
        messages.optionRequired('useFactory', 'a function returning the module options'),
      );
    }
    const { useFactory } = options;
    return this.assemble(options.isGlobal, options.imports ?? [], {
      provide: REDIS_TX_OPTIONS,
      useFactory: async (...args: never[]) =>
        resolveModuleOptions(await useFactory(...args), 'factory'),
      inject: options.inject ?? [],
    });
  }

  private static assemble(
    isGlobal: boolean | undefined,
    imports: NonNullable<DynamicModule['imports']>,
    optionsProvider: Provider,
  ): DynamicModule {
    if (isGlobal !== undefined && typeof isGlobal !== 'boolean') {
      throw new InvalidOptionsError(
        'isGlobal',
        messages.optionInvalid('isGlobal', 'true or false', isGlobal),
      );
    }
    return {
      module: RedisTxModule,
      global: isGlobal ?? true,
      imports: [...imports, DiscoveryModule],
      providers: [
        optionsProvider,
        RedisConnections,
        {
          provide: REDIS_CLIENT,
          useFactory: (connections: RedisConnections) => connections.shared,
          inject: [RedisConnections],
        },
        TransactionRunner,
        RedisTx,
        RedlockNodes,
        RedlockLocks,
        NodeLocks,
        // A Redlock quorum when `locks.redlock` is set, the module's own Redis otherwise.
        {
          provide: LOCK_STORE,
          useFactory: (redlock: RedlockLocks, node: NodeLocks) =>
            redlock.enabled ? redlock : node,
          inject: [RedlockLocks, NodeLocks],
        },
        LockService,
        RedisTxExplorer,
        // Client-safe HTTP answers to refusals, logged once and quietly, with
        // Retry-After where the end is known, with no setup by the app.
        { provide: APP_INTERCEPTOR, useClass: RedisTxHttpInterceptor },
      ],
      // RedisConnections and RedlockNodes are exported for the health
      // indicator of `nestjs-redis-tx/terminus`, not the package's entry;
      // the options for CronTicksModule.
      exports: [
        RedisTx,
        LockService,
        REDIS_CLIENT,
        RedisConnections,
        RedlockNodes,
        REDIS_TX_OPTIONS,
      ],
    };
  }
}
