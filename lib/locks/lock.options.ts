import type { Redis, RedisOptions } from 'ioredis';

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
  /**
   * Replicas that must acknowledge the lock (Redis WAIT) before it is
   * returned; when fewer do within `replicaAckTimeoutMs`, it is released and
   * LockNotAcquiredError thrown. 0 (the default) waits for none.
   */
  replicaAcks?: number;
  /** How long to wait for those acknowledgements. 100 ms. */
  replicaAckTimeoutMs?: number;
  /**
   * The lock's name in traces and metrics (`nestjs-redis-tx/otel`, the
   * tracing channels): a template such as `'order'`, never a concrete key,
   * so that their attributes stay few. Defaults to `@Locked() on
   * Class.method`, or the method called (`LockService.using()`, …).
   */
  traceName?: string;
}

/** Options of a lock held around a piece of work (`@Locked`, `LockService.using`). */
export interface HoldOptions {
  /**
   * Keep the lock at least this long (ms) after it was acquired, even when
   * the work ends sooner: the lease is then cut to what remains and the lock
   * ends by itself, while the caller goes on at once. With `onBusy: 'skip'`
   * a job fired at about the same moment on several instances runs once.
   * The lock is released at once when the work takes longer. 0 (the default)
   * releases it as soon as the work ends.
   */
  lockAtLeastFor?: number;
}

export interface LockedOptions extends Omit<LockOptions, 'signal'>, HoldOptions {
  /** What a lock held elsewhere (busy, or still held when `waitMs` runs out) does to the method: `'throw'` LockNotAcquiredError (default) or `'skip'` it, resolving to undefined. Other refusals (Redis unreachable, shutdown…) always throw. */
  onBusy?: 'throw' | 'skip';
}

/** Options of `LockService.using`. */
export interface LockUsingOptions extends LockOptions, HoldOptions {}

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
  /** Default `replicaAcks` of every lock (not available with `redlock` or Redis Cluster). 0. */
  replicaAcks?: number;
  /** Default `replicaAckTimeoutMs`. 100 ms. */
  replicaAckTimeoutMs?: number;
  /** Take every lock of this module by quorum over these independent masters (Redlock) instead of on `connection`. */
  redlock?: RedlockOptions;
}

/** One Redlock master: a URL, ioredis options (Sentinel included), or a Redis instance the module uses but never closes. */
export type RedlockConnection = string | RedisOptions | Redis;

export interface RedlockOptions {
  /** At least 3 independent masters (no replicas of one another, no Cluster); a lock needs a majority of them. */
  connections: RedlockConnection[];
  /** Share of the lease set aside for clocks that run at different speeds on the masters and here. 0.01. */
  clockDriftFactor?: number;
}
