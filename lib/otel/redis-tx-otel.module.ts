import {
  Inject,
  Injectable,
  Module,
  type DynamicModule,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import {
  registerRedisTxInstrumentation,
  type RedisTxInstrumentationOptions,
  type UnregisterRedisTxInstrumentation,
} from './redis-tx.instrumentation.js';

const OTEL_OPTIONS = Symbol.for('nestjs-redis-tx:otel-options');

/** Registers the instrumentation when the application starts, and removes it once it has shut down. */
@Injectable()
class RedisTxOtelRegistration implements OnModuleInit, OnApplicationShutdown {
  private unregister?: UnregisterRedisTxInstrumentation;

  constructor(@Inject(OTEL_OPTIONS) private readonly options: RedisTxInstrumentationOptions) {}

  onModuleInit(): void {
    this.unregister ??= registerRedisTxInstrumentation(this.options);
  }

  // After the lock service's shutdown, so that the releases it makes are recorded.
  onApplicationShutdown(): void {
    this.unregister?.();
    this.unregister = undefined;
  }
}

/**
 * {@link registerRedisTxInstrumentation} as a Nest module: import
 * `RedisTxOtelModule.forRoot()` once, next to `RedisTxModule`.
 */
@Module({})
export class RedisTxOtelModule {
  static forRoot(options: RedisTxInstrumentationOptions = {}): DynamicModule {
    return {
      module: RedisTxOtelModule,
      providers: [{ provide: OTEL_OPTIONS, useValue: options }, RedisTxOtelRegistration],
    };
  }
}
