import { RedisTxError } from '../../errors/redis-tx.error.js';

/** What one Redlock master did wrong; several of them make the cause of a Redlock failure. */
export class RedlockNodeError extends RedisTxError {
  constructor(
    /** `host:port` of the master (never its credentials). */
    readonly node: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
