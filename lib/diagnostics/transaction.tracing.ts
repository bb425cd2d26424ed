import { ShuttingDownError } from '../errors/shutting-down.error.js';
import { TransactionConflictError } from '../errors/transaction-conflict.error.js';
import { TransactionExecError } from '../errors/transaction-exec.error.js';
import { TransactionOutcomeUnknownError } from '../errors/transaction-outcome-unknown.error.js';
import {
  tracing,
  type TransactionTrace,
  type TransactionTraceOutcome,
} from './redis-tx.tracing.js';

/**
 * Publishes an outermost transaction on `nestjs-redis-tx:transaction`
 * around `run` (every attempt), so that its commands run in the async
 * context of `start`. The caller tests `tracing.transaction.hasSubscribers` first.
 */
export function traceTransaction<R extends { attempts: number }>(
  name: string,
  watched: boolean,
  run: () => Promise<R>,
): Promise<R> {
  const trace: TransactionTrace = { name, watched };
  // The outcome is set before Node publishes `asyncStart`/`asyncEnd`.
  const traced = () =>
    run().then(
      (result) => {
        trace.outcome = 'committed';
        trace.attempts = result.attempts;
        trace.conflicts = result.attempts - 1;
        return result;
      },
      (error: unknown) => {
        trace.outcome = outcomeOf(error);
        trace.errorType = error instanceof Error ? error.name : typeof error;
        if (error instanceof TransactionConflictError) {
          trace.attempts = error.attempts;
          trace.conflicts = error.attempts;
        }
        throw error;
      },
    );
  return tracing.transaction.tracePromise(traced, trace);
}

function outcomeOf(error: unknown): TransactionTraceOutcome {
  if (error instanceof TransactionConflictError) return 'conflict';
  if (error instanceof TransactionExecError) return 'exec-error';
  if (error instanceof TransactionOutcomeUnknownError) return 'outcome-unknown';
  if (error instanceof ShuttingDownError) return 'shutdown';
  return 'error';
}
