import { RedisTxError } from './redis-tx.error.js';

/**
 * The lease ended while the holder still ran (renewal failed, or another
 * holder took the key after it expired). `lock.signal` aborts with it.
 */
export class LockLostError extends RedisTxError {
  constructor(
    message: string,
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
