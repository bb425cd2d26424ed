import type { ChainableCommander } from 'ioredis';
import type { QueuedCommand } from '../connection/tx-connection.js';
import { NoActiveTransactionError } from '../errors/no-active-transaction.error.js';
import { QueuedCommandAwaitedError } from '../errors/queued-command-awaited.error.js';
import { messages } from '../redis-tx.messages.js';

/**
 * The `RedisTx.multi` of one transaction: it records commands instead of
 * sending them, so nothing leaves the process before EXEC, a failed nested
 * method can drop exactly what it queued, and awaiting a queued command fails
 * loudly instead of yielding 'QUEUED'.
 */
export class CommandQueue {
  readonly commands: QueuedCommand[] = [];
  readonly chain: ChainableCommander;
  private last = 'command';
  private closed = false;

  constructor(isCommand: (name: string) => boolean) {
    const record = new Map<string, (...args: unknown[]) => ChainableCommander>();
    const chain: ChainableCommander = new Proxy({} as ChainableCommander, {
      get: (_target, property) => {
        if (typeof property !== 'string') return undefined;
        if (property === 'then') return () => this.refuseAwait();
        if (property === 'exec' || property === 'execBuffer') return () => refuseExec();
        if (property === 'length') return this.commands.length;
        if (!isCommand(property)) return undefined;
        let method = record.get(property);
        if (!method) {
          method = (...args: unknown[]) => {
            if (this.closed) {
              throw new NoActiveTransactionError(
                messages.transactionEnded(`RedisTx.multi.${property}`),
              );
            }
            this.commands.push([property, ...args]);
            this.last = property;
            return chain;
          };
          record.set(property, method);
        }
        return method;
      },
    });
    this.chain = chain;
  }

  /** After the method has returned, a command recorded by a straggling callback would be lost: refuse it. */
  close(): void {
    this.closed = true;
  }

  truncate(length: number): void {
    this.commands.length = length;
  }

  private refuseAwait(): never {
    throw new QueuedCommandAwaitedError(messages.queuedCommandAwaited(this.last));
  }
}

function refuseExec(): never {
  throw new QueuedCommandAwaitedError(messages.execCalledByUser);
}
