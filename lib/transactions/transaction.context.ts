import type { RedisClient } from '../connection/redis-client.js';
import type { TxConnection } from '../connection/tx-connection.js';
import { CommandQueue } from './command-queue.js';

export type CommitHook = (replies: unknown[]) => unknown;
export type RollbackHook = (error: unknown) => unknown;

/** Where a joined method started, so that its failure can undo just its own part. */
export interface Savepoint {
  commands: number;
  commitHooks: number;
  rollbackHooks: number;
}

/** The state of one attempt of one outermost transaction, shared by every method that joins it. */
export class TransactionContext {
  readonly queue: CommandQueue;
  readonly commitHooks: CommitHook[] = [];
  readonly rollbackHooks: RollbackHook[] = [];
  /** Rollback hooks of joined methods that failed: their work was dropped, so they run whatever the outcome. */
  readonly droppedWork: { hook: RollbackHook; error: unknown }[] = [];
  /** Set once the outermost method has returned or thrown: nothing more can join or queue. */
  ended = false;
  /** Set when MULTI … EXEC has been written to the connection. */
  execSent = false;

  constructor(
    readonly label: string,
    /** What `RedisTx.client` is inside: the WATCH connection, or the shared client. */
    readonly client: RedisClient,
    /** The module's command recorder, the prototype of `RedisTx.multi`. */
    recorder: object,
    /** The isolated connection holding the WATCH, and its generation when WATCH was sent. */
    readonly watch?: { connection: TxConnection; generation: number },
  ) {
    this.queue = new CommandQueue(recorder);
  }

  end(): void {
    this.ended = true;
    this.queue.close();
  }

  savepoint(): Savepoint {
    return {
      commands: this.queue.commands.length,
      commitHooks: this.commitHooks.length,
      rollbackHooks: this.rollbackHooks.length,
    };
  }

  rollbackTo(savepoint: Savepoint, error: unknown): void {
    this.queue.truncate(savepoint.commands);
    this.commitHooks.length = savepoint.commitHooks;
    for (const hook of this.rollbackHooks.splice(savepoint.rollbackHooks)) {
      this.droppedWork.push({ hook, error });
    }
  }
}
