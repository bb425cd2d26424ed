import type { TransactionResult } from './transaction.options.js';

/** Makes what a transaction resolves to from its value, EXEC's replies and its attempts. */
export type Shape<T, R> = (value: T, replies: unknown[] | undefined, attempts: number) => R;

/** What `RedisTx.run` resolves to. */
export function asResult<T>(
  value: T,
  replies: unknown[] | undefined,
  attempts: number,
): TransactionResult<T> {
  return { value, replies, attempts };
}

/** What a `@Transactional` method resolves to: the method's own value. */
export function valueOnly<T>(value: T): T {
  return value;
}
