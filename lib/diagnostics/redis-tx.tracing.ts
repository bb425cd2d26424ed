import { tracingChannel, type TracingChannel } from 'node:diagnostics_channel';
import type { LockRefusalReason } from '../errors/lock-not-acquired.error.js';

/**
 * Names of the `node:diagnostics_channel` tracing channels this library
 * publishes on. Each is a `TracingChannel`: its `start`, `end`,
 * `asyncStart`, `asyncEnd` and `error` channels are named
 * `tracing:<name>:<event>`, as Node does for every tracing channel.
 */
export const tracingChannelNames = {
  /** A lock's acquisition, from the call to the grant or refusal, waits included. */
  lockAcquire: 'nestjs-redis-tx:lock.acquire',
  /** A lock's hold, from the grant to its release or loss. */
  lockHold: 'nestjs-redis-tx:lock.hold',
  /** An outermost transaction, every attempt included. */
  transaction: 'nestjs-redis-tx:transaction',
} as const;

/** How a lock is held. */
export type LockTraceMode = 'write' | 'read' | 'semaphore';

/**
 * The context object of `nestjs-redis-tx:lock.acquire`. Its fields are
 * bounded: a template, never a concrete key or a token. Node adds `result`
 * (the `Lock`) or `error` when the acquisition settles.
 */
export interface LockAcquireTrace {
  /** The lock's template: its `traceName`, else `@Locked() on Class.method` or the entry point (`LockService.using()`, …). */
  readonly name: string;
  readonly mode: LockTraceMode;
  /** How many names the lock covers. */
  readonly keyCount: number;
  /** Set when it settles: `acquired`, `refused` (LockNotAcquiredError, see `reason`) or `error`. */
  outcome?: 'acquired' | 'refused' | 'error';
  /** The refusal's `reason`, when `outcome` is `refused`. */
  reason?: LockRefusalReason;
  /** From the call to the grant or refusal, in milliseconds. */
  waitMs?: number;
  /** Set by Node when the acquisition is granted. */
  result?: unknown;
  /** Set by Node when it is not. */
  error?: unknown;
}

/**
 * The context object of `nestjs-redis-tx:lock.hold`. `start` and `end` are
 * published when the lock is granted (the lock is created inside them, so
 * its lease renewals run in their async context); `asyncStart` and
 * `asyncEnd` when the holder lets go of it or it is lost, after `error`
 * for a loss.
 */
export interface LockHoldTrace {
  /** As {@link LockAcquireTrace.name}. */
  readonly name: string;
  readonly mode: LockTraceMode;
  readonly keyCount: number;
  /** Set when it ends: `released` (the holder let go) or `lost` (the lease was lost first). */
  outcome?: 'released' | 'lost';
  /** From the grant to the end, in milliseconds. */
  heldMs?: number;
  /** The `LockLostError`, when the lock was lost. */
  error?: unknown;
}

/** How a traced transaction ended. */
export type TransactionTraceOutcome =
  | 'committed'
  /** A watched key changed on every attempt (TransactionConflictError). */
  | 'conflict'
  /** Some queued commands failed at EXEC (TransactionExecError). */
  | 'exec-error'
  /** The reply to EXEC was lost (TransactionOutcomeUnknownError). */
  | 'outcome-unknown'
  /** Refused because the application is shutting down. */
  | 'shutdown'
  /** Anything else: the method threw, or Redis could not be reached before EXEC. */
  | 'error';

/** The context object of `nestjs-redis-tx:transaction`. Node adds `result` or `error` when it settles. */
export interface TransactionTrace {
  /** The transaction's template: its `traceName`, else `Class.method` or `RedisTx.run()`. */
  readonly name: string;
  /** Whether it watches keys (and may be retried). */
  readonly watched: boolean;
  /** Set when it settles. */
  outcome?: TransactionTraceOutcome;
  /** How many times the method ran; known when it commits or conflicts. */
  attempts?: number;
  /** How many attempts conflicted; known when it commits or conflicts. */
  conflicts?: number;
  /** The error's class name (`error.name`), when it did not commit. */
  errorType?: string;
  /** Set by Node when it commits (the `TransactionResult`). */
  result?: unknown;
  /** Set by Node when it does not. */
  error?: unknown;
}

/**
 * One channel per name in a process, like the event channels: both builds
 * of the package (ES module and CommonJS) publish on the same ones.
 * Call sites test `hasSubscribers` themselves, so an unobserved
 * application builds no context object and wraps no promise.
 */
export const tracing = {
  lockAcquire: tracingChannel<unknown, LockAcquireTrace>(tracingChannelNames.lockAcquire),
  lockHold: tracingChannel<unknown, LockHoldTrace>(tracingChannelNames.lockHold),
  transaction: tracingChannel<unknown, TransactionTrace>(tracingChannelNames.transaction),
} satisfies Record<string, TracingChannel<unknown, object>>;
