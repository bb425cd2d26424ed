import { Module, type DynamicModule } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { CRON_TICKS_OPTIONS } from './cron-ticks.constants.js';
import type { CronTicksModuleOptions } from './cron-ticks.options.js';
import { resolveCronTicksOptions } from './cron-ticks.options-validator.js';
import { CronTicks } from './cron-ticks.service.js';

/**
 * Makes `@OncePerTick()` work: import it once, beside `RedisTxModule` (whose
 * connection and locks it uses) and `ScheduleModule`. Global, so that
 * `CronTicks` can be injected anywhere.
 */
@Module({})
export class CronTicksModule {
  /** Invalid options throw here, at bootstrap. */
  static forRoot(options: CronTicksModuleOptions = {}): DynamicModule {
    const resolved = resolveCronTicksOptions(options);
    return {
      module: CronTicksModule,
      global: true,
      imports: [DiscoveryModule],
      providers: [{ provide: CRON_TICKS_OPTIONS, useValue: resolved }, CronTicks],
      exports: [CronTicks],
    };
  }
}
