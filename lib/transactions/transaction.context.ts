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

const none: readonly never[] = Object.freeze([]);

/** Adds to a list of this context's own in place; the shared empty one is replaced, never changed. */
function appended<T>(list: readonly T[], item: T): readonly T[] {
  if (list === none) return [item];
  (list as T[]).push(item);
  return list;
}

/** The state of one attempt of one outermost transaction, shared by every method that joins it. */
export class TransactionContext {
  readonly queue: CommandQueue;
  // Most transactions register no hook: until one does, these share one
  // empty list, so a transaction costs three arrays fewer. Add through the
  // methods below, never by push.
  commitHooks: readonly CommitHook[] = none;
  rollbackHooks: readonly RollbackHook[] = none;
  /** Rollback hooks of joined methods that failed: their work was dropped, so they run whatever the outcome. */
  droppedWork: readonly { hook: RollbackHook; error: unknown }[] = none;
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

  addCommitHook(hook: CommitHook): void {
    this.commitHooks = appended(this.commitHooks, hook);
  }

  addRollbackHook(hook: RollbackHook): void {
    this.rollbackHooks = appended(this.rollbackHooks, hook);
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
    this.commitHooks = this.commitHooks.slice(0, savepoint.commitHooks);
    const dropped = this.rollbackHooks.slice(savepoint.rollbackHooks);
    if (dropped.length === 0) return;
    this.rollbackHooks = this.rollbackHooks.slice(0, savepoint.rollbackHooks);
    for (const hook of dropped) this.droppedWork = appended(this.droppedWork, { hook, error });
  }
}
