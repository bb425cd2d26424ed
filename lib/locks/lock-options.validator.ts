import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { optionKeys, refuseUnknownKeys } from '../options/known-keys.js';
import { messages } from '../redis-tx.messages.js';
import type { LockedOptions, LockUsingOptions } from './lock.options.js';

const usingKeys = optionKeys<LockUsingOptions>({
  ttlMs: true,
  waitMs: true,
  mode: true,
  permits: true,
  signal: true,
  replicaAcks: true,
  replicaAckTimeoutMs: true,
  lockAtLeastFor: true,
  traceName: true,
});
const lockedKeys = optionKeys<LockedOptions>({
  ttlMs: true,
  waitMs: true,
  mode: true,
  permits: true,
  replicaAcks: true,
  replicaAckTimeoutMs: true,
  lockAtLeastFor: true,
  onBusy: true,
  traceName: true,
});

/**
 * The options each entry point reads. `acquire` and `tryAcquire` know
 * `lockAtLeastFor` only to refuse it with its own explanation.
 */
const keysOf = {
  locked: { known: lockedKeys, elsewhere: { signal: messages.optionNotForLocked } },
  acquire: { known: usingKeys, elsewhere: {} },
  tryAcquire: {
    known: usingKeys.filter((key) => key !== 'waitMs'),
    elsewhere: { waitMs: messages.optionNotForTryAcquire },
  },
  using: { known: usingKeys, elsewhere: {} },
} as const;

/** Refuses options that are not an object, or that carry a key `entry` does not read. */
export function checkLockOptionKeys(
  options: unknown,
  entry: keyof typeof keysOf,
  where: string,
): void {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionsError('options', messages.optionsNotObject(where, options));
  }
  const { known, elsewhere } = keysOf[entry];
  refuseUnknownKeys(options, known, where, '', elsewhere);
}

/** Checks lock options where they are written, before Redis is touched. */
export function checkLockOptions(
  options: LockedOptions & { signal?: unknown },
  where: string,
): void {
  const {
    ttlMs,
    waitMs,
    mode,
    permits,
    onBusy,
    signal,
    replicaAcks,
    replicaAckTimeoutMs,
    lockAtLeastFor,
    traceName,
  } = options;
  const whole = (name: string, value: unknown, min: number) => {
    if (
      value !== undefined &&
      (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min)
    ) {
      invalid(where, name, `a whole number ≥ ${min}`, value);
    }
  };
  whole('ttlMs', ttlMs, 1);
  whole('waitMs', waitMs, 0);
  whole('permits', permits, 1);
  whole('replicaAcks', replicaAcks, 0);
  whole('replicaAckTimeoutMs', replicaAckTimeoutMs, 1);
  whole('lockAtLeastFor', lockAtLeastFor, 0);
  if (mode !== undefined && mode !== 'read' && mode !== 'write')
    invalid(where, 'mode', "'read' or 'write'", mode);
  if (mode !== undefined && permits !== undefined) {
    invalid(where, 'mode', 'left out when `permits` makes a semaphore', mode);
  }
  if (onBusy !== undefined && onBusy !== 'throw' && onBusy !== 'skip') {
    invalid(where, 'onBusy', "'throw' or 'skip'", onBusy);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal))
    invalid(where, 'signal', 'an AbortSignal', signal);
  if (traceName !== undefined && (typeof traceName !== 'string' || traceName === ''))
    invalid(where, 'traceName', 'a non-empty string', traceName);
}

function invalid(where: string, option: string, expected: string, got: unknown): never {
  throw new InvalidOptionsError(option, messages.optionInvalid(option, expected, got, where));
}

/** `lockAtLeastFor` needs the end of the work, which only `@Locked` and `LockService.using()` see. */
export function refuseLockAtLeastFor(options: object, where: string): void {
  if ('lockAtLeastFor' in options && options.lockAtLeastFor !== undefined) {
    throw new InvalidOptionsError('lockAtLeastFor', messages.lockAtLeastForNotHere(where));
  }
}
