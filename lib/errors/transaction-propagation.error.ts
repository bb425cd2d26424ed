import { RedisTxError } from './redis-tx.error.js';

/** A transaction cannot start or join here: `'never'` inside a transaction, or `watch` joining one that has no WATCH connection. */
export class TransactionPropagationError extends RedisTxError {}
