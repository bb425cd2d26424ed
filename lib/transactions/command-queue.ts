import type { ChainableCommander } from 'ioredis';
import type { QueuedCommand } from '../connection/tx-connection.js';
import { NoActiveTransactionError } from '../errors/no-active-transaction.error.js';
import { QueuedCommandAwaitedError } from '../errors/queued-command-awaited.error.js';
import { messages } from '../redis-tx.messages.js';

// Private to this copy of the package, and need be no more: a chain, its
// recording prototype and its queue are all made by the module that owns
// the transaction, so code of the other build never reads this key.
const queueOf = Symbol('nestjs-redis-tx.queue');

interface Chain {
  [queueOf]: CommandQueue;
}

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

  /** `recorder` comes from {@link commandRecorder}, made once per module. */
  constructor(recorder: object) {
    const chain = Object.create(recorder) as Chain;
    chain[queueOf] = this;
    this.chain = chain as unknown as ChainableCommander;
  }

  /** `args` becomes the queued command: pass an array of the caller's own, never one it keeps. */
  record(name: string, args: unknown[]): void {
    if (this.closed) {
      throw new NoActiveTransactionError(messages.transactionEnded(`RedisTx.multi.${name}`));
    }
    // The recording method's own rest array, turned into [name, ...args]
    // in place: one array fewer per command than copying it.
    args.unshift(name);
    this.commands.push(args as QueuedCommand);
    this.last = name;
  }

  /** After the method has returned, a command recorded by a straggling callback would be lost: refuse it. */
  close(): void {
    this.closed = true;
  }

  truncate(length: number): void {
    this.commands.length = length;
  }

  refuseAwait(): never {
    throw new QueuedCommandAwaitedError(messages.queuedCommandAwaited(this.last));
  }
}

/**
 * The prototype of every `RedisTx.multi` chain of one module: a recording
 * method per command it knows (and its `…Buffer` twin), built once, so that a
 * transaction costs one small object rather than a Proxy and its closures.
 * Anything else reads as undefined, as on a chain that lacks the command.
 */
export function commandRecorder(commandNames: Iterable<string>): object {
  const recorder = Object.create(null) as Record<string | symbol, unknown>;
  for (const command of commandNames) {
    for (const name of [command, `${command}Buffer`]) {
      recorder[name] = function (this: Chain, ...args: unknown[]) {
        this[queueOf].record(name, args);
        return this;
      };
    }
  }
  Object.defineProperties(recorder, {
    then: {
      value(this: Chain) {
        this[queueOf].refuseAwait();
      },
    },
    exec: { value: refuseExec },
    execBuffer: { value: refuseExec },
    length: {
      get(this: Chain) {
        return this[queueOf].commands.length;
      },
    },
  });
  return recorder;
}

function refuseExec(): never {
  throw new QueuedCommandAwaitedError(messages.execCalledByUser);
}
