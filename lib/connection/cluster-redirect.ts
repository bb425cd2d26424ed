import { ReplyError } from 'ioredis';
import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { TransactionCrossSlotError } from '../errors/transaction-cross-slot.error.js';
import { isConnectionLostError, isUnsentError } from './redis-client.js';

/** Where a MOVED reply says a slot lives now; `node` is undefined for redirects that name none. */
export interface ClusterRedirect {
  slot?: number;
  node?: string;
}

/**
 * Replies by which a Cluster node refuses a command because the slot is not
 * (or not yet) served there: MOVED and ASK (the slot has another owner),
 * TRYAGAIN (mid-migration), CLUSTERDOWN (mid-failover). The command did not
 * run, and an EXEC refused this way, or aborted because a queued command was,
 * applied nothing; so to a WATCH transaction each is a conflict, retried
 * against a fresh slot map.
 */
const refusal = /^(MOVED|ASK) (\d+) (\S+)|^(TRYAGAIN|CLUSTERDOWN)\b/;

export function clusterRedirect(error: unknown): ClusterRedirect | undefined {
  if (error instanceof TransactionAbortedError) {
    for (const cause of error.causes) {
      const redirect = clusterRedirect(cause);
      if (redirect) return redirect;
    }
    return error.cause === undefined ? undefined : clusterRedirect(error.cause);
  }
  if (!(error instanceof ReplyError)) return undefined;
  const match = refusal.exec((error as Error).message);
  if (!match) return undefined;
  if (match[4]) return {};
  return { slot: Number(match[2]), node: match[1] === 'MOVED' ? match[3] : undefined };
}

/**
 * A pinned WATCH connection that could not be reached, or closed, before
 * EXEC was sent: the WATCH is gone and nothing was applied. On a Cluster that
 * usually means its node failed, so it too is retried against a fresh map.
 */
export function lostBeforeExec(error: unknown): boolean {
  if (error instanceof TransactionCrossSlotError) return false;
  if (error instanceof TransactionAbortedError) return error.causes.length === 0;
  return isConnectionLostError(error) && !isUnsentError(error);
}
