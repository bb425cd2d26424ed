import { markAsHttpConflict } from './http-conflict.js';
import { RedisTxError } from './redis-tx.error.js';

/** The lock was busy and the wait ran out (or `waitMs` was 0). Answers 409 over HTTP. */
export class LockNotAcquiredError extends RedisTxError {
  constructor(
    message: string,
    readonly keys: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    markAsHttpConflict(this);
  }
}
