import { RedisTxError } from './redis-tx.error.js';

/**
 * Redis refused a command because the connection's ACL user may not touch
 * the key (NOPERM). A definite answer: nothing was applied, and retrying
 * will not help until the user is granted access.
 */
export class RedisPermissionError extends RedisTxError {
  constructor(
    message: string,
    readonly keys: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
