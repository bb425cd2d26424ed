import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import { propagations, type TransactionOptions } from './transaction.options.js';

const transactionKeys = optionKeys<TransactionOptions>({
  watch: true,
  retries: true,
  propagation: true,
  traceName: true,
});

/** Checks options where they are written (decorator or call), before anything touches Redis. */
export function checkTransactionOptions(options: TransactionOptions, where: string): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionsError('options', messages.optionsNotObject(where, options));
  }
  refuseUnknownKeys(options, transactionKeys, where);
  const { watch, retries, propagation, traceName } = options;
  if (
    watch !== undefined &&
    typeof watch !== 'function' &&
    !(Array.isArray(watch) && watch.every((key) => typeof key === 'string' && key !== ''))
  ) {
    invalid(where, 'watch', 'a list of non-empty key strings or a function returning one', watch);
  }
  if (retries !== undefined && (!Number.isSafeInteger(retries) || retries < 0)) {
    invalid(where, 'retries', 'a whole number ≥ 0', retries);
  }
  if (propagation !== undefined && !propagations.includes(propagation)) {
    invalid(where, 'propagation', propagations.map((p) => `'${p}'`).join(', '), propagation);
  }
  if (traceName !== undefined && (typeof traceName !== 'string' || traceName === '')) {
    invalid(where, 'traceName', 'a non-empty string', traceName);
  }
}

const noKeys: readonly string[] = Object.freeze([]);

export function resolveWatchKeys(
  watch: TransactionOptions['watch'],
  args: readonly unknown[],
  where: string,
): readonly string[] {
  if (watch === undefined) return noKeys;
  const keys =
    typeof watch === 'function' ? (watch as (...a: readonly unknown[]) => unknown)(...args) : watch;
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string' && key !== '')) {
    invalid(where, 'watch', 'a function returning a list of non-empty key strings', keys);
  }
  return keys as readonly string[];
}

function invalid(where: string, option: string, expected: string, got: unknown): never {
  throw new InvalidOptionsError(option, messages.optionInvalid(option, expected, got, where));
}
