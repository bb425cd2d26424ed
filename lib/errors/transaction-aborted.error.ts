import { RedisTxError } from './redis-tx.error.js';

/**
 * Redis refused the transaction before running it (EXECABORT: a queued command
 * was rejected, e.g. wrong arity or OOM), or it could not be sent at all.
 * Nothing was applied.
 */
export class TransactionAbortedError extends RedisTxError {
  constructor(
    message: string,
    /** The per-command errors Redis reported while queueing. */
    readonly causes: readonly Error[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
