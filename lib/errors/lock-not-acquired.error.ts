import { lockRefusalCode, markHttpStatus } from './http-status.js';
import { RedisTxError } from './redis-tx.error.js';

/**
 * Why a lock was not acquired. Only `busy` and `timeout` mean someone else
 * holds it; the others are the caller's own doing or the infrastructure's.
 *
 * - `busy`: held elsewhere, and the call did not wait (`waitMs: 0`, `tryAcquire`).
 * - `timeout`: held elsewhere for all of `waitMs`.
 * - `would-deadlock`: the call chain holds the name for reading and asked to write.
 * - `aborted`: the caller's `signal` aborted the wait.
 * - `shutdown`: the application is shutting down.
 * - `connection`: Redis could not be reached, or the connection failed before it answered; nothing was taken.
 * - `outcome-unknown`: the reply to the acquisition was lost; whatever it took is released by token.
 * - `no-quorum`: Redlock: too few masters answered.
 * - `replica-acks`: fewer replicas than `replicaAcks` acknowledged the lock in time; it was released.
 * - `lease-expired`: the lock was won, but its lease had ended by the time the reply was handled; it was released.
 */
export type LockRefusalReason =
  | 'busy'
  | 'timeout'
  | 'would-deadlock'
  | 'aborted'
  | 'shutdown'
  | 'connection'
  | 'outcome-unknown'
  | 'no-quorum'
  | 'replica-acks'
  | 'lease-expired';

/**
 * The lock was not acquired; `reason` says why. Over HTTP it answers 409
 * when the lock is held elsewhere or the caller gave up (busy, timeout,
 * would-deadlock, aborted), and 503 when Redis or the application could not
 * serve it (the other reasons); the body carries a client-safe message and
 * a stable `code` (see `docs/http.md`), never this message.
 */
export class LockNotAcquiredError extends RedisTxError {
  readonly reason: LockRefusalReason;

  constructor(
    message: string,
    readonly keys: readonly string[],
    options: { reason: LockRefusalReason; cause?: unknown },
  ) {
    super(message, options);
    this.reason = options.reason;
    markHttpStatus(this, lockRefusalCode[this.reason]);
  }
}
