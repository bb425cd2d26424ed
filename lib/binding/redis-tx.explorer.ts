import { Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { messages } from '../redis-tx.messages.js';
import { LockService } from '../locks/lock.service.js';
import { TransactionRunner } from '../transactions/transaction.runner.js';
import { bindRuntime, hasDecoratedMethods } from './instance-binding.js';

/**
 * Finds, at bootstrap, every provider and controller with decorated methods
 * and binds it to this module instance. A global module initialises before
 * the modules that use it, so the binding exists before their own hooks run.
 */
@Injectable()
export class RedisTxExplorer implements OnModuleInit {
  private readonly logger = new Logger('RedisTxModule');

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly transactions: TransactionRunner,
    private readonly locks: LockService,
  ) {}

  onModuleInit(): void {
    const runtime = { transactions: this.transactions, locks: this.locks };
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const prototype: unknown = wrapper.metatype?.prototype;
      if (!wrapper.isDependencyTreeStatic()) {
        if (typeof prototype === 'object' && prototype && hasDecoratedMethods(prototype)) {
          this.logger.warn(messages.requestScoped(wrapper.name));
        }
        continue;
      }
      const instance: unknown = wrapper.instance;
      if (typeof instance === 'object' && instance !== null && hasDecoratedMethods(instance)) {
        bindRuntime(instance, runtime);
      }
    }
  }
}
