import type { LockMode } from './lock.options.js';

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
}
