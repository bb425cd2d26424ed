import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { RedisTxHealthIndicator } from './redis-tx.health-indicator.js';

/**
 * Provides RedisTxHealthIndicator next to a global RedisTxModule (the
 * default). With `isGlobal: false`, list RedisTxHealthIndicator among the
 * providers of a module that imports both RedisTxModule and TerminusModule.
 */
@Module({
  imports: [TerminusModule],
  providers: [RedisTxHealthIndicator],
  exports: [RedisTxHealthIndicator],
})
export class RedisTxHealthModule {}
