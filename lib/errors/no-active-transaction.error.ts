import { RedisTxError } from './redis-tx.error.js';

/** `RedisTx.multi` or a hook was used, or propagation `'mandatory'` was asked, outside a transaction. */
export class NoActiveTransactionError extends RedisTxError {}
