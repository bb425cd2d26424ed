/**
 * How a transactional method relates to a transaction already active in its
 * call chain: `'required'` joins it or starts one; `'requires_new'` always
 * starts an independent one; `'mandatory'` joins and throws without one;
 * `'never'` throws inside one.
 */
export type Propagation = 'required' | 'requires_new' | 'mandatory' | 'never';

export const propagations: readonly Propagation[] = [
  'required',
  'requires_new',
  'mandatory',
  'never',
];

/** Keys to WATCH: a list, or a function of the decorated method's arguments. */
export type WatchKeys = readonly string[] | ((...args: never[]) => readonly string[]);

export interface TransactionOptions {
  /** Keys to WATCH before the method runs; it then runs on an isolated connection and is re-run on conflict. */
  watch?: WatchKeys;
  /** Re-runs after a WATCH conflict; defaults to the module's `transactions.retries`. */
  retries?: number;
  /** Default `'required'`. */
  propagation?: Propagation;
  /**
   * The transaction's name in traces and metrics (`nestjs-redis-tx/otel`,
   * the tracing channels): a template, never a concrete key. Defaults to
   * `Class.method`, or `RedisTx.run()`.
   */
  traceName?: string;
}

/** What `RedisTx.run` resolves to. */
export interface TransactionResult<T> {
  /** What the callback returned. */
  value: T;
  /**
   * EXEC's reply to each queued command, in order; `[]` when nothing was queued;
   * `undefined` when the callback joined an outer transaction, whose EXEC has not run yet.
   */
  replies: unknown[] | undefined;
  /** How many times the callback ran (more than 1 after WATCH conflicts); 0 when it joined. */
  attempts: number;
}
