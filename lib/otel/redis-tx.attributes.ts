import type { Attributes } from '@opentelemetry/api';
import type { LockAcquireTrace, LockHoldTrace } from '../diagnostics/redis-tx.tracing.js';

/**
 * The attributes of the library's spans and metrics. Each takes a bounded
 * set of values: a template name (`traceName`, `Class.method`, or the
 * entry point), a mode, an outcome, a refusal reason, or a number on spans.
 * No concrete key, token or error message is ever recorded.
 */
export const attributeNames = {
  /** The template: `traceName`, else the decorated method or the entry point. Spans and metrics. */
  name: 'redis_tx.name',
  /** `write`, `read` or `semaphore`. Spans and metrics. */
  lockMode: 'redis_tx.lock.mode',
  /** How many names the lock covers. Spans. */
  lockKeyCount: 'redis_tx.lock.key_count',
  /** `acquired`, `refused`, `error` (lock.acquire); `released`, `lost` (lock.hold). Spans and metrics. */
  lockOutcome: 'redis_tx.lock.outcome',
  /** The refusal's reason (`busy`, `timeout`, …). Spans and the refusals counter. */
  lockReason: 'redis_tx.lock.reason',
  /** What made the granting attempt: `first-try`, `release` or `poll`. Spans. */
  lockWokenBy: 'redis_tx.lock.woken_by',
  /** Milliseconds waited. Spans. */
  lockWaitMs: 'redis_tx.lock.wait_ms',
  /** Milliseconds held. Spans. */
  lockHeldMs: 'redis_tx.lock.held_ms',
  /** Whether the transaction watches keys. Spans. */
  transactionWatched: 'redis_tx.transaction.watched',
  /** `committed`, `conflict`, `exec-error`, `outcome-unknown`, `shutdown` or `error`. Spans and metrics. */
  transactionOutcome: 'redis_tx.transaction.outcome',
  /** How many times the method ran. Spans. */
  transactionAttempts: 'redis_tx.transaction.attempts',
  /** How many attempts conflicted. Spans. */
  transactionConflicts: 'redis_tx.transaction.conflicts',
  /** The error's class name, when it did not commit. Spans. */
  errorType: 'error.type',
} as const;

const at = attributeNames;

export function lockAttributes(trace: LockAcquireTrace | LockHoldTrace): Attributes {
  return { [at.name]: trace.name, [at.lockMode]: trace.mode, [at.lockKeyCount]: trace.keyCount };
}

/** The bounded subset the metrics share: name, and mode for a lock. */
export function metricAttributes(attributes: Attributes): Attributes {
  const bounded: Attributes = { [at.name]: attributes[at.name] };
  if (attributes[at.lockMode] !== undefined) bounded[at.lockMode] = attributes[at.lockMode];
  return bounded;
}
