import { markHttpStatus } from './http-status.js';
import { RedisTxError } from './redis-tx.error.js';

/**
 * The application is shutting down: the module refuses new work, and aborts
 * the `signal` of every lock still held with this error before it releases
 * the lock. Nothing was sent for work refused this way. Answers 503 over
 * HTTP, with a Retry-After of the shutdown deadline.
 */
export class ShuttingDownError extends RedisTxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    markHttpStatus(this, 'SHUTTING_DOWN');
  }
}
