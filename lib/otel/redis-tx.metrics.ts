import type { Counter, Histogram, Meter, UpDownCounter } from '@opentelemetry/api';

/**
 * The instruments, created once per registration. Every attribute set is
 * bounded: the template name, the lock mode, and an outcome or refusal
 * reason, never a concrete key or a token.
 */
export interface RedisTxInstruments {
  lockWait: Histogram;
  lockHold: Histogram;
  lockHandOff: Histogram;
  lockWaiters: UpDownCounter;
  lockRenewals: Counter;
  lockLosses: Counter;
  lockRefusals: Counter;
  transactionDuration: Histogram;
  transactionAttempts: Histogram;
  transactionConflicts: Counter;
  transactionOutcomeUnknown: Counter;
}

/** The names of the metrics `registerRedisTxInstrumentation` records. */
export const metricNames = {
  lockWait: 'redis_tx.lock.wait.duration',
  lockHold: 'redis_tx.lock.hold.duration',
  lockHandOff: 'redis_tx.lock.handoff.duration',
  lockWaiters: 'redis_tx.lock.waiters',
  lockRenewals: 'redis_tx.lock.renewals',
  lockLosses: 'redis_tx.lock.losses',
  lockRefusals: 'redis_tx.lock.refusals',
  transactionDuration: 'redis_tx.transaction.duration',
  transactionAttempts: 'redis_tx.transaction.attempts',
  transactionConflicts: 'redis_tx.transaction.conflicts',
  transactionOutcomeUnknown: 'redis_tx.transaction.outcome_unknown',
} as const;

/** Attempts are small whole numbers: buckets that tell 1 from 2 from 3. */
const attemptBuckets = [1, 2, 3, 4, 5, 7, 10, 15, 20];

export function createInstruments(meter: Meter): RedisTxInstruments {
  const ms = (name: string, description: string): Histogram =>
    meter.createHistogram(name, { unit: 'ms', description });
  return {
    lockWait: ms(metricNames.lockWait, 'From the call to the grant or refusal of a lock'),
    lockHold: ms(metricNames.lockHold, 'From the grant of a lock to its release or loss'),
    lockHandOff: ms(
      metricNames.lockHandOff,
      'From a release in this process to the grant of the waiter it woke, in this process',
    ),
    lockWaiters: meter.createUpDownCounter(metricNames.lockWaiters, {
      description: 'Acquisitions of this process waiting for a busy lock',
    }),
    lockRenewals: meter.createCounter(metricNames.lockRenewals, {
      description: 'Lease renewals that got through',
    }),
    lockLosses: meter.createCounter(metricNames.lockLosses, {
      description: 'Locks lost before their holder released them',
    }),
    lockRefusals: meter.createCounter(metricNames.lockRefusals, {
      description: 'Acquisitions refused, by reason',
    }),
    transactionDuration: ms(
      metricNames.transactionDuration,
      'From the start of a transaction to its end, every attempt included',
    ),
    transactionAttempts: meter.createHistogram(metricNames.transactionAttempts, {
      description: 'How many times a transaction ran its method',
      advice: { explicitBucketBoundaries: attemptBuckets },
    }),
    transactionConflicts: meter.createCounter(metricNames.transactionConflicts, {
      description: 'Attempts that met a WATCH conflict',
    }),
    transactionOutcomeUnknown: meter.createCounter(metricNames.transactionOutcomeUnknown, {
      description: 'Transactions whose EXEC reply was lost: applied or not, nobody knows',
    }),
  };
}
