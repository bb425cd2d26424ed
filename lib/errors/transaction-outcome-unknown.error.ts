import { markHttpStatus } from './http-status.js';
import { RedisTxError } from './redis-tx.error.js';

/**
 * The connection failed after EXEC was sent and before its reply arrived:
 * Redis may or may not have applied the transaction. It is never retried
 * automatically; check the data (or make the write idempotent) before retrying.
 * Answers 503 over HTTP: the client may retry once it has checked.
 */
export class TransactionOutcomeUnknownError extends RedisTxError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    markHttpStatus(this, 'OUTCOME_UNKNOWN');
  }
}
