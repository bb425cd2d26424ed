import { markHttpStatus } from './http-status.js';
import { RedisTxError } from './redis-tx.error.js';

/**
 * A watched key changed (or the WATCH was lost to a reconnect) on every
 * attempt. Nothing of the last attempt was applied. Answers 409 over HTTP.
 */
export class TransactionConflictError extends RedisTxError {
  constructor(
    message: string,
    readonly attempts: number,
  ) {
    super(message);
    markHttpStatus(this, 'TRANSACTION_CONFLICT');
  }
}
