// How long a lease can be counted on, on this process's own clock. Kept free
// of I/O so the arithmetic can be checked on its own.

/** The share of every lease set aside for clocks that run at slightly different speeds, unless a store is told otherwise. */
export const DEFAULT_DRIFT_FACTOR = 0.01;

/**
 * The drift margin: the part of a lease of `ttlMs` this process does not
 * count on, because Redis's clock and this one may run at slightly different
 * speeds (`driftFactor` of the lease), and timers resolve to the millisecond
 * (2 ms). Redlock's validity uses the same margin.
 */
export function driftMs(ttlMs: number, driftFactor: number = DEFAULT_DRIFT_FACTOR): number {
  return ttlMs * driftFactor + 2;
}

/**
 * The moment, on performance.now(), after which a lease of `ttlMs` set by a
 * request sent at `sentAt` may have ended in Redis. Redis starts the lease no
 * earlier than it receives the request, which is after it was sent: so
 * counting from the send is safe however slow the reply, and a reply handled
 * after this moment proves nothing about who holds the lock now.
 */
export function leaseEndsAt(
  sentAt: number,
  ttlMs: number,
  driftFactor: number = DEFAULT_DRIFT_FACTOR,
): number {
  return sentAt + ttlMs - driftMs(ttlMs, driftFactor);
}
