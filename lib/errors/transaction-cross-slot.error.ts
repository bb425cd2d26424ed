import { TransactionAbortedError } from './transaction-aborted.error.js';

/** One key of a refused Cluster transaction, with the hash slot it lives in. */
export interface KeySlot {
  key: string;
  slot: number;
}

/**
 * On Redis Cluster, the transaction's keys (queued or watched) live in more
 * than one hash slot, which MULTI/EXEC cannot span. It was refused before
 * anything was sent, so nothing was applied. `keys` lists every key with its
 * slot.
 */
export class TransactionCrossSlotError extends TransactionAbortedError {
  constructor(
    message: string,
    readonly keys: readonly KeySlot[],
  ) {
    super(message);
  }
}
