import { RedisTxError } from './redis-tx.error.js';

/**
 * The application is shutting down: the module refuses new work, and aborts
 * the `signal` of every lock still held with this error before it releases
 * the lock. Nothing was sent for work refused this way.
 */
export class ShuttingDownError extends RedisTxError {}
