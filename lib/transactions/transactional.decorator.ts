import { markDecorated, runtimeOf } from '../binding/instance-binding.js';
import { wrapMethod } from '../binding/wrap-method.js';
import type { TransactionOptions } from './transaction.options.js';
import { checkTransactionOptions } from './transaction-options.validator.js';

type AsyncMethod = (...args: never[]) => unknown;

/**
 * Runs the method as a Redis transaction: commands queued on `RedisTx.multi`
 * are sent as one MULTI … EXEC when the outermost transactional method
 * returns, and none is applied if it throws. Works on providers and on
 * controller, resolver and gateway handlers; the method then returns a Promise.
 */
export function Transactional(options: TransactionOptions = {}): MethodDecorator {
  return (target, propertyKey, descriptor) => {
    const label = `${target.constructor.name}.${String(propertyKey)}`;
    checkTransactionOptions(options, `@Transactional() on ${label}`);
    markDecorated(target);
    wrapMethod(
      descriptor as unknown as TypedPropertyDescriptor<AsyncMethod>,
      (original) =>
        async function transactional(this: unknown, ...args: never[]) {
          const { transactions } = runtimeOf(this, label);
          const result = await transactions.execute(
            () => original.apply(this, args),
            options,
            args,
            label,
          );
          return result.value;
        },
    );
  };
}
