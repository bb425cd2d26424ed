/**
 * Ends a lock wait early: the caller's AbortSignal aborted, or the
 * application began to close. One plain object per acquisition that waits,
 * heard by one wait at a time. An AbortController per acquisition, with a
 * listener added and removed on every wait, cost several microseconds of CPU
 * on every contended acquisition, more than the rest of the wait.
 */
export class WaitCancel {
  private cancelledWith?: { reason: unknown };
  private listener?: () => void;
  private unfollow?: () => void;

  get cancelled(): boolean {
    return this.cancelledWith !== undefined;
  }

  /** The caller's signal's reason; undefined when the application's closing ended the wait. */
  get reason(): unknown {
    return this.cancelledWith?.reason;
  }

  /** Ends the wait in progress, if any, and every later one at once. Only the first call counts. */
  cancel(reason?: unknown): void {
    if (this.cancelledWith) return;
    this.cancelledWith = { reason };
    const listener = this.listener;
    this.listener = undefined;
    listener?.();
  }

  /**
   * Cancels with the caller's `signal` and its reason, at once if it has
   * aborted already; `detach` removes the listener, so a signal that lives
   * longer than the acquisition keeps none.
   */
  follow(signal: AbortSignal | undefined): void {
    if (!signal) return;
    if (signal.aborted) {
      this.cancel(signal.reason);
      return;
    }
    const onAbort = () => this.cancel(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    this.unfollow = () => signal.removeEventListener('abort', onAbort);
  }

  /** Stops following the caller's signal: the acquisition is over. */
  detach(): void {
    this.unfollow?.();
    this.unfollow = undefined;
  }

  /** Calls `listener` when cancelled (the caller checks `cancelled` first); the returned function stops that. */
  listen(listener: () => void): () => void {
    this.listener = listener;
    return () => {
      if (this.listener === listener) this.listener = undefined;
    };
  }
}
