import type { LockRefusalReason } from './lock-not-acquired.error.js';

/** The HTTP statuses this library's errors answer with, when raised from an HTTP handler. */
export type RedisTxHttpStatus = 409 | 503;

/**
 * Refused because of contention or the caller's own doing (409 Conflict), or
 * because Redis or the application could not serve the request just now
 * (503 Service Unavailable): the request itself was fine.
 */
export const lockRefusalStatus: Readonly<Record<LockRefusalReason, RedisTxHttpStatus>> = {
  busy: 409,
  timeout: 409,
  'would-deadlock': 409,
  aborted: 409,
  shutdown: 503,
  connection: 503,
  'outcome-unknown': 503,
  'no-quorum': 503,
  'replica-acks': 503,
  'lease-expired': 503,
};

/**
 * Gives the error the fields that make Nest's default exception filter answer
 * with `status` (it treats errors shaped like those of the `http-errors`
 * package as HTTP errors), so no filter has to be installed. With `expose`
 * the body is `{ statusCode, message }` with the error's message; this is
 * the one place that decides what a client is shown.
 */
export function markHttpStatus(error: Error, status: RedisTxHttpStatus): void {
  Object.defineProperties(error, {
    statusCode: { value: status, enumerable: false },
    status: { value: status, enumerable: false },
    expose: { value: true, enumerable: false },
  });
}
