import { RedisTxError } from './redis-tx.error.js';

/** Why a `@OncePerTick()` method cannot be scheduled. */
export type InvalidCronJobReason =
  /** No `@Cron()` on the method, and no `cron` option either. */
  | 'no-cron'
  /** Neither `@Cron(…, { name })` nor the `job` option names the job. */
  | 'no-name'
  /** The cron expression does not parse, or is a date (a job that fires once has no ticks). */
  | 'bad-expression'
  /** The `cron` package (which `@nestjs/schedule` brings) could not be loaded. */
  | 'cron-missing';

/**
 * A `@OncePerTick()` method is set up wrongly. Thrown when the application
 * starts (`app.init()`), before any tick runs; `method` names the method
 * and `reason` says what is missing.
 */
export class InvalidCronJobError extends RedisTxError {
  constructor(
    message: string,
    readonly method: string,
    readonly reason: InvalidCronJobReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
