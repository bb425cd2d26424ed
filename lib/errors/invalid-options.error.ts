import { RedisTxError } from './redis-tx.error.js';

/** A module, decorator or call option is invalid. The message names the option. */
export class InvalidOptionsError extends RedisTxError {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
  }
}
