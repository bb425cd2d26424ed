import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { messages } from '../redis-tx.messages.js';

/** What `RedisTxHealthIndicator.locksHeldWithin()` checks. */
export interface RedisTxLockAgeOptions {
  /** A lock held longer than this is reported, and the check is down. */
  maxHeldMs: number;
  /**
   * The lock names to check (cheap: one inspect per name). Without it, the
   * lock key prefix is scanned, up to `maxScannedKeys` keys.
   */
  keys?: readonly string[];
  /** How many Redis keys a scan looks at, at most; 1 000. Ignored with `keys`. */
  maxScannedKeys?: number;
}

/** One lock held too long, as the health check reports it (no tokens). */
export interface RedisTxOverdueLock {
  key: string;
  mode: 'write' | 'read' | 'semaphore';
  heldMs: number;
  /** The writer's fencing token, to hand to forceRelease()'s caller; undefined for shared holders. */
  fencingToken: number | undefined;
}

/** The details of the lock-age check, under its key in the health result. */
export interface RedisTxLockAgeDetails {
  /** How many lock names were inspected. */
  checked: number;
  /** False when a scan stopped at `maxScannedKeys` before seeing every key. */
  complete: boolean;
  overdue: RedisTxOverdueLock[];
}

const DEFAULT_MAX_SCANNED_KEYS = 1_000;
const where = 'RedisTxHealthIndicator.locksHeldWithin()';

/** Checks the options, naming the one that is wrong; returns them with defaults. */
export function checkLockAgeOptions(
  options: RedisTxLockAgeOptions,
): Required<Omit<RedisTxLockAgeOptions, 'keys'>> & { keys?: readonly string[] } {
  const whole = (option: string, value: unknown, min: number) => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
      throw new InvalidOptionsError(
        option,
        messages.optionInvalid(option, `a whole number ≥ ${min}`, value, where),
      );
    }
    return value;
  };
  if (typeof options !== 'object' || options === null) {
    throw new InvalidOptionsError('options', messages.optionsNotObject(where, options));
  }
  const known = ['maxHeldMs', 'keys', 'maxScannedKeys'];
  for (const option of Object.keys(options)) {
    if (!known.includes(option)) {
      throw new InvalidOptionsError(option, messages.optionUnknown(where, option, { known }));
    }
  }
  const keys = options.keys;
  if (keys !== undefined && (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string'))) {
    throw new InvalidOptionsError(
      'keys',
      messages.optionInvalid('keys', 'a list of lock names', keys, where),
    );
  }
  return {
    maxHeldMs: whole('maxHeldMs', options.maxHeldMs, 0),
    maxScannedKeys: whole('maxScannedKeys', options.maxScannedKeys ?? DEFAULT_MAX_SCANNED_KEYS, 1),
    ...(keys ? { keys } : {}),
  };
}
