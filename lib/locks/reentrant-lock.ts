import type { HeldLock } from './held-lock.js';
import { InvalidOptionsError } from '../errors/invalid-options.error.js';
import { messages } from '../redis-tx.messages.js';
import type { Lock } from './lock.js';
import type { LockHandle } from './portable/lock-handle.js';

/**
 * A lock whose keys are, at least in part, already held by the same call
 * chain: it adds a hold to each underlying lock, and releasing it gives those
 * holds back, so only the outermost release frees the keys in Redis.
 */
export class ReentrantLock implements Lock {
  readonly fencingTokens: ReadonlyMap<string, number>;
  private combined?: AbortSignal;
  private released = false;

  constructor(
    readonly locks: readonly HeldLock[],
    readonly keys: readonly string[],
  ) {
    this.fencingTokens = new Map(
      locks.flatMap((lock) => [...lock.fencingTokens]).filter(([name]) => keys.includes(name)),
    );
  }

  get signal(): AbortSignal {
    // Read through each lock's own getter, which checks its lease end on the clock.
    const signals = this.locks.map((lock) => lock.signal);
    return signals.length === 1 ? signals[0]! : (this.combined ??= AbortSignal.any(signals));
  }

  get mode(): Lock['mode'] {
    return this.locks[0]!.mode;
  }

  get fencingToken(): number {
    return this.fencingTokens.get(this.keys[0]!)!;
  }

  async release(): Promise<boolean> {
    if (this.released) return false;
    this.released = true;
    const results = await Promise.all(this.locks.map((lock) => lock.release()));
    return results.every(Boolean);
  }

  async extend(ttlMs?: number): Promise<boolean> {
    const results = await Promise.all(this.locks.map((lock) => lock.extend(ttlMs)));
    return results.every(Boolean);
  }

  /** Refused: an outer holder in the call chain still has these keys, and it decides when they go. */
  toHandle(): LockHandle {
    throw new InvalidOptionsError('toHandle', messages.lockHandleReentered(this.keys));
  }
}
