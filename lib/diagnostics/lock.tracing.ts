import { LockNotAcquiredError } from '../errors/lock-not-acquired.error.js';
import {
  tracing,
  type LockAcquireTrace,
  type LockHoldTrace,
  type LockTraceMode,
} from './redis-tx.tracing.js';

/**
 * Publishes an acquisition on `nestjs-redis-tx:lock.acquire` around
 * `acquire`, so that what it sends to Redis runs in the async context of its
 * `start` (a tracer's span is then the parent of those commands). The caller
 * tests `tracing.lockAcquire.hasSubscribers` first.
 */
export function traceLockAcquire<T>(
  name: string,
  mode: LockTraceMode,
  keyCount: number,
  acquire: () => Promise<T>,
): Promise<T> {
  const trace: LockAcquireTrace = { name, mode, keyCount };
  const started = performance.now();
  // Called inside tracePromise: what it sends runs in the context of `start`.
  // The outcome is set before Node publishes `asyncStart`/`asyncEnd`.
  const traced = () =>
    acquire().then(
      (lock) => {
        trace.outcome = 'acquired';
        trace.waitMs = performance.now() - started;
        return lock;
      },
      (error: unknown) => {
        trace.waitMs = performance.now() - started;
        if (error instanceof LockNotAcquiredError) {
          trace.outcome = 'refused';
          trace.reason = error.reason;
        } else trace.outcome = 'error';
        throw error;
      },
    );
  return tracing.lockAcquire.tracePromise(traced, trace);
}

/** The open holds, by the lock object: a hold ends once, at release or loss, whichever comes first. */
const holds = new WeakMap<object, { trace: LockHoldTrace; started: number }>();

/**
 * Publishes the start of a hold on `nestjs-redis-tx:lock.hold` and creates
 * the lock inside it, so that its lease timer (and so its renewals) runs in
 * the hold's async context. The caller tests `tracing.lockHold.hasSubscribers` first.
 */
export function startLockHold<L extends object>(
  name: string,
  mode: LockTraceMode,
  keyCount: number,
  create: () => L,
): L {
  const trace: LockHoldTrace = { name, mode, keyCount };
  const { start, end } = tracing.lockHold;
  const lock = start.runStores(trace, create);
  end.publish(trace);
  holds.set(lock, { trace, started: performance.now() });
  return lock;
}

/** Ends the hold of `lock`, if one is open: `released`, or `lost` with the LockLostError. Costs a property read when nothing listens. */
export function endLockHold(lock: object, lostWith?: Error): void {
  if (!tracing.lockHold.hasSubscribers) return;
  const hold = holds.get(lock);
  if (hold === undefined) return;
  holds.delete(lock);
  const { trace } = hold;
  trace.heldMs = performance.now() - hold.started;
  const { error, asyncStart, asyncEnd } = tracing.lockHold;
  if (lostWith) {
    trace.outcome = 'lost';
    trace.error = lostWith;
    error.publish(trace);
  } else trace.outcome = 'released';
  asyncStart.publish(trace);
  asyncEnd.publish(trace);
}
