import { SpanStatusCode } from '@opentelemetry/api';
import type {
  LockAcquireTrace,
  LockHoldTrace,
  TransactionTrace,
} from '../diagnostics/redis-tx.tracing.js';
import type { Operation } from './operation.js';
import { attributeNames as at, metricAttributes } from './redis-tx.attributes.js';
import type { RedisTxInstruments } from './redis-tx.metrics.js';

// Status messages are outcomes and reasons, never an error's message: those name keys.

export function closeAcquire(trace: LockAcquireTrace, op: Operation, m: RedisTxInstruments): void {
  const outcome = trace.outcome ?? 'error';
  const bounded = metricAttributes(op.attributes);
  const waitMs = trace.waitMs ?? performance.now() - op.started;
  op.span.setAttributes({ [at.lockOutcome]: outcome, [at.lockWaitMs]: waitMs });
  m.lockWait.record(waitMs, { ...bounded, [at.lockOutcome]: outcome });
  if (op.waiting) m.lockWaiters.add(-1, bounded);
  if (outcome === 'acquired') return;
  const reason = trace.reason;
  if (reason !== undefined) {
    op.span.setAttribute(at.lockReason, reason);
    m.lockRefusals.add(1, { ...bounded, [at.lockReason]: reason });
  } else op.span.setAttribute(at.errorType, errorType(trace.error));
  op.span.setStatus({ code: SpanStatusCode.ERROR, message: reason ?? outcome });
}

export function closeHold(trace: LockHoldTrace, op: Operation, m: RedisTxInstruments): void {
  const outcome = trace.outcome ?? 'released';
  const bounded = metricAttributes(op.attributes);
  const heldMs = trace.heldMs ?? performance.now() - op.started;
  op.span.setAttributes({ [at.lockOutcome]: outcome, [at.lockHeldMs]: heldMs });
  m.lockHold.record(heldMs, { ...bounded, [at.lockOutcome]: outcome });
  if (outcome === 'lost') {
    m.lockLosses.add(1, bounded);
    op.span.setStatus({ code: SpanStatusCode.ERROR, message: 'lost' });
  }
}

/**
 * `eventsSeen`: attempts and conflicts were counted from the event channels
 * inside the transaction's context; otherwise they come from its outcome.
 */
export function closeTransaction(
  trace: TransactionTrace,
  op: Operation,
  m: RedisTxInstruments,
  eventsSeen: boolean,
): void {
  const outcome = trace.outcome ?? 'error';
  const name = { [at.name]: op.attributes[at.name] };
  const attempts = op.attempts || trace.attempts;
  const conflicts = eventsSeen ? op.conflicts : (trace.conflicts ?? 0);
  if (!eventsSeen && conflicts > 0) m.transactionConflicts.add(conflicts, name);
  op.span.setAttributes({ [at.transactionOutcome]: outcome, [at.transactionConflicts]: conflicts });
  if (attempts !== undefined) op.span.setAttribute(at.transactionAttempts, attempts);
  const withOutcome = { ...name, [at.transactionOutcome]: outcome };
  m.transactionDuration.record(performance.now() - op.started, withOutcome);
  if (attempts !== undefined) m.transactionAttempts.record(attempts, withOutcome);
  if (outcome === 'outcome-unknown') m.transactionOutcomeUnknown.add(1, name);
  if (outcome !== 'committed') {
    op.span.setAttribute(at.errorType, trace.errorType ?? errorType(trace.error));
    op.span.setStatus({ code: SpanStatusCode.ERROR, message: outcome });
  }
}

function errorType(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}
