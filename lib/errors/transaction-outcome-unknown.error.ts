import { RedisTxError } from './redis-tx.error.js';

/**
 * The connection failed after EXEC was sent and before its reply arrived:
 * Redis may or may not have applied the transaction. It is never retried
 * automatically; check the data (or make the write idempotent) before retrying.
 */
export class TransactionOutcomeUnknownError extends RedisTxError {}
