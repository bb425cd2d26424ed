/** How a holder or a waiter holds, or wants, a lock: as `Lock.mode` names it (`write` is exclusive). */
export type LockHoldMode = 'write' | 'read' | 'semaphore';

/** One holder of a lock, as `LockService.inspect()` sees it. Never carries the holder's secret token. */
export interface LockHolderInfo {
  readonly mode: LockHoldMode;
  /**
   * The fencing token the holder got (not a secret: it only ranks
   * acquisitions). Kept in Redis for a `write` holder only; undefined for
   * `read` and `semaphore` holders, whose fencing tokens only they know.
   */
  readonly fencingToken: number | undefined;
  /** How long its lease has left, on the store's clock. */
  readonly leaseRemainingMs: number;
  /**
   * How long it has held the lock, counted from when its holder first asked
   * for it (so a holder that waited in line first counts that wait too), on
   * the wall clocks of the holder and the inspecting process. Undefined when
   * the holder's token does not carry that moment (a holder that predates it).
   */
  readonly heldMs: number | undefined;
}

/** One waiter in a lock's line, as `LockService.inspect()` sees it. */
export interface LockWaiterInfo {
  readonly mode: LockHoldMode;
  /** How long it has been waiting, on the wall clocks of the waiter and the inspecting process; undefined when unknown. */
  readonly waitingMs: number | undefined;
}

/** What `LockService.inspect(key)` finds under a lock name: a snapshot, stale as soon as it is read. */
export interface LockInspection {
  readonly key: string;
  /** Whether anyone holds the lock now, in any mode. */
  readonly locked: boolean;
  /** Its holders now: one writer, or any number of readers or semaphore permits. */
  readonly holders: readonly LockHolderInfo[];
  /** The line of waiters, first first, up to 100 of them. */
  readonly waiting: readonly LockWaiterInfo[];
  /** How many are waiting in all (`waiting` may list fewer). */
  readonly waitingCount: number;
  /**
   * For a semaphore: permits in use, and how many the lock admits as its
   * holders asked for it (the largest `permits` among them; undefined when
   * no holder says).
   */
  readonly permits?: { readonly inUse: number; readonly total: number | undefined };
}

/** What `LockService.forceRelease(key)` did. */
export interface ForceReleaseResult {
  readonly key: string;
  /** How many holders were evicted (0 when the lock was free). */
  readonly evicted: number;
  /**
   * A fencing token above every one given out for this key so far, taken
   * from the lock's fencing counter. Write it to a fenced resource to shut
   * out the evicted holders' late writes even before anyone takes the lock
   * again; the next holder gets a larger one still.
   */
  readonly fencingToken: number;
}

/** How many waiters `inspect()` lists at most; `waitingCount` still counts them all. */
export const LOCK_INSPECT_MAX_WAITERS = 100;
