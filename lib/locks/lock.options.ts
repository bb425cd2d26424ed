/** `'write'` (the default) is exclusive; `'read'` is shared by readers and excludes writers. */
export type LockMode = 'read' | 'write';

export interface LockOptions {
  /** Lease length: how long the lock outlives a holder that stops renewing it. */
  ttlMs?: number;
  /** How long to wait for a busy lock; 0 makes a try-lock. */
  waitMs?: number;
  mode?: LockMode;
  /** Turns the key into a counting semaphore with this many holders at once. */
  permits?: number;
  /** Cancels the wait. */
  signal?: AbortSignal;
}

export interface LockedOptions extends Omit<LockOptions, 'signal'> {
  /** What a busy lock does to the method: `'throw'` LockNotAcquiredError (default) or `'skip'` it, resolving to undefined. */
  onBusy?: 'throw' | 'skip';
}

/** Key of `@Locked`: a string, or a function of the method's arguments returning one or several. */
export type LockKey = string | ((...args: never[]) => string | readonly string[]);

export interface LockDefaults {
  /** Default lease. 30 000 ms. */
  ttlMs?: number;
  /** Default wait. 5 000 ms. */
  waitMs?: number;
  /** Prepended to every lock key in Redis. `'lock:'`. */
  keyPrefix?: string;
  /** Longest key accepted. 512. */
  maxKeyLength?: number;
  /** A waiter also re-checks this often, in case a wake-up message is lost. 1 000 ms. */
  pollMs?: number;
}
