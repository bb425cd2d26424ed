import { TransactionAbortedError } from '../errors/transaction-aborted.error.js';
import { messages } from '../redis-tx.messages.js';
import type { TxConnection } from './tx-connection.js';

interface Waiter {
  resolve: (connection: TxConnection) => void;
  reject: (error: Error) => void;
}

/**
 * Isolated connections for WATCH transactions. A WATCH belongs to a whole
 * connection, so each WATCH transaction borrows one for itself; at most `size`
 * exist, and borrowers beyond that wait their turn in order.
 */
export class WatchConnectionPool {
  private readonly idle: TxConnection[] = [];
  private readonly waiters: Waiter[] = [];
  private created = 0;
  private closed = false;
  /** Connections dropped from the pool and still closing: shutdown waits for them too. */
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private readonly size: number,
    private readonly create: () => TxConnection,
  ) {}

  acquire(): Promise<TxConnection> {
    if (this.closed) return Promise.reject(this.closedError());
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.created < this.size) {
      this.created++;
      return Promise.resolve(this.create());
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Gives a connection back; one whose state is uncertain is closed and replaced. */
  release(connection: TxConnection, reusable: boolean): void {
    if (!reusable || this.closed) {
      this.created--;
      this.closeDropped(connection);
      if (this.closed || this.waiters.length === 0) return;
      this.created++;
      connection = this.create();
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(connection);
    else this.idle.push(connection);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.closedError());
    await Promise.all([
      ...this.idle.splice(0).map((connection) => connection.close()),
      ...this.closing,
    ]);
  }

  private closeDropped(connection: TxConnection): void {
    const closed = connection.close().finally(() => this.closing.delete(closed));
    this.closing.add(closed);
  }

  private closedError(): Error {
    return new TransactionAbortedError(messages.watchPoolClosed);
  }
}
