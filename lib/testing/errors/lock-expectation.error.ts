import { RedisTxError } from '../../errors/redis-tx.error.js';

/** A lock the test expected to be held was not: thrown by `expectLockedDuring` and `LockProbe.assertHeld`. */
export class LockExpectationError extends RedisTxError {
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message);
  }
}
