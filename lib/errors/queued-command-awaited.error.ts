import { RedisTxError } from './redis-tx.error.js';

/** A command queued on `RedisTx.multi` was awaited (or `exec` was called on it): its reply exists only after EXEC. */
export class QueuedCommandAwaitedError extends RedisTxError {}
