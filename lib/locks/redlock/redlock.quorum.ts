// The arithmetic of Redlock, kept free of I/O so it can be checked on its own.
import { driftMs } from '../lease-validity.js';

/** Clocks of the masters and of this process may run at slightly different speeds: the same margin as every lease. */
export { driftMs };

/** Masters that must agree: more than half, so that any two majorities share a master. */
export function quorumOf(masters: number): number {
  return Math.floor(masters / 2) + 1;
}

/**
 * How long a lock whose keys were set with `keyTtlMs` is still safe to use,
 * counting from the moment the first command was sent: the keys may expire
 * on the masters as early as that, minus the elapsed time, minus the drift.
 */
export function validityMs(keyTtlMs: number, elapsedMs: number, clockDriftFactor: number): number {
  return keyTtlMs - elapsedMs - driftMs(keyTtlMs, clockDriftFactor);
}

/**
 * The expiry the keys get for a lease of `leaseMs`: long enough that, after
 * the drift is set aside, the holder can count on the whole lease it asked
 * for, from the first send. The lease timer of the held lock then runs on
 * `leaseMs` itself, which is exactly the validity.
 */
export function keyTtlMs(leaseMs: number, clockDriftFactor: number): number {
  return Math.ceil((leaseMs + 2) / (1 - clockDriftFactor));
}
