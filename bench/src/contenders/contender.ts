/** A lock implementation as the benchmark drives it. */
export interface LockClient {
  /** Resolves once the lock is held, with the function that releases it. */
  lock(key: string): Promise<() => Promise<unknown>>;
  close(): Promise<void>;
}

/** `floor` is hand-written ioredis, `ours` this library, `peer` another library. */
export type ContenderKind = 'floor' | 'ours' | 'peer';

export interface Contender {
  name: string;
  kind: ContenderKind;
  /** Opens one client (or one application) on the lock server. */
  open(url: string): Promise<LockClient>;
}

/** Lock lifetime for every contender: long enough that no lock expires during a run. */
export const ttlMs = 10_000;

/**
 * The retry delay of every "tuned" peer: the shortest one that still leaves
 * the event loop a turn between attempts (plus as much jitter where the
 * library adds jitter). Peers poll; this is the best they can do on a busy key.
 */
export const tunedRetryMs = 1;

/**
 * Calls `attempt` until it yields a lock: peers whose defaults give up after a
 * few retries throw or return null under contention, and a caller that must
 * get the lock starts over, as the bench's workers do.
 */
export async function untilHeld<T>(attempt: () => Promise<T | null>): Promise<T> {
  for (;;) {
    try {
      const held = await attempt();
      if (held !== null) return held;
    } catch {
      // Given up after its retries: start over.
    }
  }
}
