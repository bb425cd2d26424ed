import type { LockMode } from './lock.options.js';
import type { LockHandle } from './portable/lock-handle.js';

/** A held lock: what `LockService.acquire` returns and what a `@Locked` method can read. */
export interface Lock {
  /** The names locked, sorted (several for a multi-key lock). */
  readonly keys: readonly string[];
  readonly mode: LockMode | 'semaphore';
  /**
   * Increases with every acquisition of the key, by anyone. Pass it to the
   * resource you write to and have it refuse tokens lower than the last it
   * saw: a holder that outlived its lease then cannot do harm.
   */
  readonly fencingToken: number;
  /** The fencing token of each key, for a multi-key lock. */
  readonly fencingTokens: ReadonlyMap<string, number>;
  /** Aborts with LockLostError when the lease is lost; check it in long work. */
  readonly signal: AbortSignal;
  /** Releases the lock (the outermost hold, when re-entered). False when it was no longer held. */
  release(): Promise<boolean>;
  /** Renews the lease to `ttlMs` from now (default: the lock's own). False when it was no longer held. */
  extend(ttlMs?: number): Promise<boolean>;
  /**
   * Hands the lock over to another process: returns a {@link LockHandle}
   * (plain, JSON-safe) that `LockService.adopt(handle)` there turns back into
   * a held lock with the same fencing tokens. This process lets go at once:
   * it no longer renews or releases the lock, `signal` aborts with
   * LockLostError (`reason: 'handed-over'`), and `release()` returns false.
   * Until adopted, nobody renews the lease: take the lock with a `ttlMs`
   * that covers the trip. The handle carries the holder's secret tokens.
   *
   * @throws InvalidOptionsError when the lock is no longer held here, or is
   *   re-entered (an outer holder in the call chain still has it).
   * @throws LockLostError when the lock was lost before it was handed over.
   */
  toHandle(): LockHandle;
}
