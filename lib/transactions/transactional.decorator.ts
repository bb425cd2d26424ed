import { addMethodLayer } from '../binding/method-layers.js';
import type { TransactionOptions } from './transaction.options.js';
import { checkTransactionOptions } from './transaction-options.validator.js';
import { valueOnly } from './transaction-shape.js';

/**
 * Runs the method as a Redis transaction: commands queued on `RedisTx.multi`
 * are sent as one MULTI … EXEC when the outermost transactional method
 * returns, and none is applied if it throws. Works on providers and on
 * controller, resolver and gateway handlers; the method then returns a Promise.
 */
export function Transactional(options: TransactionOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const label = `${target.constructor.name}.${String(propertyKey)}`;
    // Checked once, here: every call reuses the same options.
    checkTransactionOptions(options, `@Transactional() on ${label}`);
    addMethodLayer(
      target,
      descriptor,
      {
        order: 1,
        // The runner's promise resolves to the method's value itself: no
        // async wrapper, no promise chained on to unwrap it.
        run: ({ transactions }, _self, args, next) =>
          transactions.execute(next, options, args, label, valueOnly),
      },
      label,
    );
  };
}
