import { InvalidLockKeyError } from '../errors/invalid-lock-key.error.js';
import { messages } from '../redis-tx.messages.js';

/** Half of a surrogate pair on its own: not text, so UTF-8 cannot carry it and replaces it. */
const loneSurrogate = /\p{Cs}/u;

/** What a template literal makes of a missing argument or an object: `order:undefined`, `[object Object]`. */
const accidentalValue = /\[object \w+\]|(?:^|\W)(?:undefined|null|NaN)(?:\W|$)/;

/**
 * Checks what a key option produced and returns the distinct names, sorted:
 * every caller takes several locks in the same order, so two callers naming
 * the same keys in different orders cannot deadlock.
 */
export function checkLockNames(raw: unknown, maxLength: number, label: string): string[] {
  const names = Array.isArray(raw) ? (raw as unknown[]) : [raw];
  if (names.length === 0)
    throw new InvalidLockKeyError(messages.invalidLockKey(label, raw, 'is an empty list'));
  for (const name of names) {
    if (typeof name !== 'string') {
      throw new InvalidLockKeyError(messages.invalidLockKey(label, name, 'is not a string'));
    }
    if (name.trim() === '')
      throw new InvalidLockKeyError(messages.invalidLockKey(label, name, 'is empty'));
    if (loneSurrogate.test(name)) {
      throw new InvalidLockKeyError(
        messages.invalidLockKey(
          label,
          name,
          'contains a lone UTF-16 surrogate, which Redis would store as U+FFFD and so confuse with other keys',
        ),
      );
    }
    if (accidentalValue.test(name)) {
      throw new InvalidLockKeyError(
        messages.invalidLockKey(
          label,
          name,
          'contains a value that was not meant to be part of a key',
        ),
      );
    }
    if (name.length > maxLength) {
      throw new InvalidLockKeyError(
        messages.invalidLockKey(
          label,
          `${name.slice(0, 40)}…`,
          `is longer than ${maxLength} characters`,
        ),
      );
    }
  }
  return [...new Set(names as string[])].sort();
}

/** The Redis keys of one lock name; the hash tag keeps them in one Cluster slot. */
export interface LockRedisKeys {
  /** The exclusive (write) holder: a string, `fence:token`, with the lease as its expiry. */
  writer: string;
  /** Shared (read) holders: token → lease end. */
  readers: string;
  /** Semaphore holders: token → lease end. */
  permits: string;
  /** Waiters in arrival order: token → ticket. */
  queue: string;
  /** Waiters' own leases, so a crashed waiter leaves the line: token → lease end. */
  waiterLeases: string;
}

export function lockRedisKeys(prefix: string, name: string): LockRedisKeys {
  const base = `${prefix}{${hashTagOf(name)}}`;
  return {
    writer: base,
    readers: `${base}:r`,
    permits: `${base}:s`,
    queue: `${base}:q`,
    waiterLeases: `${base}:qx`,
  };
}

/**
 * Redis Cluster hashes the text between the first `{` and the next `}`, and
 * the whole key when that text is empty. A name starting with `}` would leave
 * it empty, scattering one lock's keys over several slots, so such a name
 * (and, to keep the mapping one-to-one, one starting with a backslash) gets
 * a leading backslash. Every other name is used as it is.
 */
function hashTagOf(name: string): string {
  return name.startsWith('}') || name.startsWith('\\') ? `\\${name}` : name;
}
