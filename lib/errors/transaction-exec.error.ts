import { RedisTxError } from './redis-tx.error.js';

/** One queued command's outcome, in queue order. */
export type CommandReply = { ok: true; value: unknown } | { ok: false; error: Error };

/**
 * EXEC ran, and at least one command failed at run time (e.g. WRONGTYPE).
 * Redis has no rollback: every other command was applied. `replies` holds
 * every command's value or error, in the order they were queued.
 */
export class TransactionExecError extends RedisTxError {
  constructor(
    message: string,
    readonly replies: readonly CommandReply[],
  ) {
    super(message);
  }

  /** The failed commands' errors, by position in the queue. */
  get failures(): { index: number; error: Error }[] {
    return this.replies.flatMap((reply, index) =>
      reply.ok ? [] : [{ index, error: reply.error }],
    );
  }
}
