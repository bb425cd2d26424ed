import { RedisTxError } from './redis-tx.error.js';

/** A decorated method ran on an object that no RedisTxModule has seen (not created by Nest, or request-scoped). */
export class UnboundInstanceError extends RedisTxError {}
